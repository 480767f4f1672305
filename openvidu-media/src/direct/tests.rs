use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rtc::shared::marshal::Unmarshal;
use rtc::srtp::protection_profile::ProtectionProfile;

use super::*;
use crate::transport::MuxSocket;

/// Two contexts with the same keys: the sender's, and the receiver's that decrypts what it sends.
fn contexts() -> (Context, Context) {
    let provider = rtc::crypto::default_provider().expect("the ring crypto provider");
    let key: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let salt: Vec<u8> = (0..12u8).map(|i| i.wrapping_mul(91).wrapping_add(3)).collect();
    let context =
        || Context::new(&key, &salt, ProtectionProfile::AeadAes128Gcm, None, None, provider.crypto()).expect("context");
    (context(), context())
}

fn packet(seq: u16, timestamp: u32, payload: &[u8]) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp,
            ssrc: 0x1234_5678,
            marker: seq.is_multiple_of(3),
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
}

async fn receiver() -> (tokio::net::UdpSocket, SocketAddr) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

#[tokio::test]
async fn a_leg_sends_what_the_receiver_decrypts_across_the_sequence_wrap() {
    let (sending, mut receiving) = contexts();
    let (socket, to) = receiver().await;
    let path = Arc::new(MediaPath::default());
    path.set(Arc::new(MuxSocket::loopback()), to);
    let rtp = DirectRtp::new(path);
    rtp.install(sending);
    let leg = DirectLeg::new(rtp, 90_000);

    let seqs: Vec<u16> = (65_530..=65_535).chain(0..6).collect();
    let mut batch = SendBatch::default();
    for (i, seq) in seqs.iter().enumerate() {
        let payload = vec![i as u8; 100 + i];
        assert_eq!(leg.try_write(packet(*seq, 3000 * i as u32, &payload), &mut batch), Handed::Queued);
    }
    assert_eq!(batch.flush(), 0);

    let mut buf = [0u8; 1500];
    for (i, seq) in seqs.iter().enumerate() {
        let n =
            tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf)).await.expect("in time").expect("recv");
        let plain = receiving.decrypt_rtp(&buf[..n]).expect("the receiver decrypts it");
        let got = rtp::Packet::unmarshal(&mut &plain[..]).expect("an RTP packet");
        assert_eq!(got.header.sequence_number, *seq);
        assert_eq!(got.header.timestamp, 3000 * i as u32);
        assert_eq!(
            (got.header.ssrc, got.header.payload_type, got.header.marker),
            (0x1234_5678, 96, seq.is_multiple_of(3))
        );
        assert_eq!(got.payload[..], vec![i as u8; 100 + i][..]);
    }

    let report = leg.sender_report(Instant::now()).expect("a report once packets went out");
    assert_eq!((report.ssrc, report.packet_count), (0x1234_5678, 12));
    assert_eq!(report.octet_count, (0..12).map(|i| 100 + i).sum::<u32>());
}

#[tokio::test]
async fn nothing_is_sent_before_the_keys_and_the_path_are_known() {
    let (sending, _) = contexts();
    let (_socket, to) = receiver().await;
    let path = Arc::new(MediaPath::default());
    let rtp = DirectRtp::new(path.clone());
    let leg = DirectLeg::new(rtp.clone(), 48_000);
    let mut batch = SendBatch::default();
    assert_eq!(leg.try_write(packet(1, 0, b"x"), &mut batch), Handed::Unbound, "no path");
    path.set(Arc::new(MuxSocket::loopback()), to);
    assert_eq!(leg.try_write(packet(2, 0, b"x"), &mut batch), Handed::Unbound, "no keys");
    assert!(leg.sender_report(Instant::now()).is_none(), "nothing sent, nothing to report");
    rtp.install(sending);
    assert_eq!(leg.try_write(packet(3, 0, b"x"), &mut batch), Handed::Queued);
    assert_eq!(batch.flush(), 0);
}

#[test]
fn a_report_maps_the_last_frame_begun_to_now_and_counts_everything() {
    let start = Instant::now();
    let mut sent = SentCounters::default();
    assert!(sent.report(start, 90_000).is_none());
    sent.record(start, &packet(10, 1000, &[0; 50]));
    // The same frame's next packet, later: the mapping keeps the frame's first packet.
    sent.record(start + Duration::from_millis(5), &packet(11, 1000, &[0; 50]));
    // A retransmission of an older packet: counted, the mapping unmoved.
    sent.record(start + Duration::from_millis(6), &packet(9, 100, &[0; 20]));
    let report = sent.report(start + Duration::from_millis(100), 90_000).expect("a report");
    assert_eq!((report.packet_count, report.octet_count), (3, 120));
    // 100 ms after the frame at 1000, on a 90 kHz clock.
    assert_eq!(report.rtp_time, 1000 + 9000);

    sent.record(start + Duration::from_millis(200), &packet(12, 19_000, &[0; 10]));
    let report = sent.report(start + Duration::from_millis(200), 90_000).expect("a report");
    assert_eq!(report.rtp_time, 19_000);
    assert_eq!(report.packet_count, 4);
}

#[test]
fn the_order_of_packets_is_read_across_the_sequence_wrap() {
    let start = Instant::now();
    let mut sent = SentCounters::default();
    sent.record(start, &packet(65_535, 500, b""));
    sent.record(start, &packet(0, 600, b""));
    assert_eq!(sent.report(start, 90_000).expect("a report").rtp_time, 600, "0 follows 65535");
    sent.record(start, &packet(65_534, 400, b""));
    assert_eq!(sent.report(start, 90_000).expect("a report").rtp_time, 600, "65534 is older");
}
