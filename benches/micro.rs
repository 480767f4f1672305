//! Criterion micro-benchmarks of the per-message and per-packet hot paths:
//!
//! - `rpc/*`: JSON-RPC frames as the signalling WebSocket handles them — parsing a client's
//!   `publishVideo` (with a browser-sized SDP offer) and `onIceCandidate` request into their
//!   param types, and building `iceCandidate` / `participantJoined` notifications and a
//!   `publishVideo` result (with the SDP answer).
//! - `rtp/*`: the RTP header rewrite the SFU applies to each forwarded packet
//!   (`openvidu-media/src/subscriber.rs`: clone, new SSRC and payload type, header extensions
//!   dropped) followed by `marshal`, on a 1000-byte payload; plus the `unmarshal` of the
//!   incoming packet for reference.
//! - `id/*`: session, connection, token and stream ids from [`RandomIds`].
//!
//! Run with `cargo bench --bench micro` (about a minute: every benchmark has a 0.5 s warm-up
//! and a 2 s measurement of 30 samples). Criterion prints one `time: [low mid high]` line per
//! benchmark; `scripts/bench` reads the middle figure.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use openvidu_core::id::{IdGenerator, RandomIds, TypeOfVideo};
use openvidu_core::wire::rpc::{
    Notification, OnIceCandidateParams, PublishVideoParams, Request, notification_frame, result_frame,
};
use rtc::rtp;
use rtc::shared::marshal::{Marshal, Unmarshal};
use serde_json::json;

/// A browser-like SDP offer (one Opus audio and one VP8 video m-line, ~2.5 KB).
fn sdp_offer() -> String {
    let mut s = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS stream\r\n",
    );
    for (mid, kind, pts) in [("0", "audio", "111 63 9 0 8 13 110 126"), ("1", "video", "96 97 98 99 100 101 102")] {
        s.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Tq0b\r\na=ice-pwd:7aO1nbW0yqcMmlyYj3dGFrhA\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 4C:21:86:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6\r\n\
             a=setup:actpass\r\na=mid:{mid}\r\n\
             a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
             a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
             a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
             a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
             a=sendonly\r\na=msid:stream track{mid}\r\na=rtcp-mux\r\n"
        ));
        for pt in pts.split(' ') {
            s.push_str(&format!(
                "a=rtpmap:{pt} codec{pt}/90000\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} transport-cc\r\n\
                 a=fmtp:{pt} minptime=10;useinbandfec=1\r\n"
            ));
        }
        s.push_str(&format!("a=ssrc:{mid}2345678 cname:Qk0b1nbW0yqcMmly\r\n"));
    }
    s
}

fn rpc(c: &mut Criterion) {
    let sdp = sdp_offer();
    let publish = json!({
        "id": 7,
        "method": "publishVideo",
        "params": {
            "sdpOffer": sdp,
            "doLoopback": false,
            "hasAudio": true,
            "hasVideo": true,
            "audioActive": true,
            "videoActive": true,
            "typeOfVideo": "CAMERA",
            "frameRate": 30,
            "videoDimensions": "{\"width\":640,\"height\":480}"
        },
        "jsonrpc": "2.0"
    })
    .to_string();
    let candidate = "candidate:842163049 1 udp 1677729535 192.0.2.10 61665 typ srflx raddr 10.0.0.5 rport 61665 \
                     generation 0 ufrag Tq0b network-cost 999";
    let ice = json!({
        "id": 8,
        "method": "onIceCandidate",
        "params": {
            "endpointName": "con_AbCdEfGhIj",
            "candidate": candidate,
            "sdpMid": "0",
            "sdpMLineIndex": 0
        },
        "jsonrpc": "2.0"
    })
    .to_string();

    let mut g = c.benchmark_group("rpc");
    g.bench_function("parse publishVideo", |b| {
        b.iter(|| {
            let req = Request::parse(black_box(&publish)).expect("a valid frame");
            black_box(req.params::<PublishVideoParams>().expect("valid params"))
        })
    });
    g.bench_function("parse onIceCandidate", |b| {
        b.iter(|| {
            let req = Request::parse(black_box(&ice)).expect("a valid frame");
            black_box(req.params::<OnIceCandidateParams>().expect("valid params"))
        })
    });
    let ids = RandomIds;
    let owner = ids.connection_id();
    let ice_note = Notification::IceCandidate {
        sender_connection_id: owner.clone(),
        endpoint_name: owner.to_string(),
        sdp_m_line_index: Some(0),
        sdp_mid: Some("0".into()),
        candidate: candidate.into(),
    };
    g.bench_function("notification iceCandidate", |b| b.iter(|| black_box(notification_frame(black_box(&ice_note)))));
    let joined = Notification::ParticipantJoined {
        id: owner.clone(),
        created_at: 1_700_000_000_000,
        metadata: "{\"clientData\":\"bench\"}%/%{\"serverData\":\"bench\"}".into(),
    };
    g.bench_function("notification participantJoined", |b| {
        b.iter(|| black_box(notification_frame(black_box(&joined))))
    });
    let id = json!(7);
    g.bench_function("result publishVideo", |b| {
        b.iter(|| {
            let result = json!({"sdpAnswer": sdp.as_str(), "id": "str_CAM_AbC_con_AbCdEfGhIj", "createdAt": 1_700_000_000_000u64});
            black_box(result_frame(&id, result, Some("rpc_session_1")))
        })
    });
    g.finish();
}

/// A publisher's VP8 packet as it arrives: 12-byte header, one-byte header extensions
/// (abs-send-time, transport-wide sequence number, mid), and a 1000-byte payload.
fn incoming_packet() -> Vec<u8> {
    let mut raw = vec![0x90, 96, 0x12, 0x34, 0, 0, 0x0b, 0xb8, 0xde, 0xad, 0xbe, 0xef];
    // One-byte extension profile 0xBEDE, 3 words of extensions.
    raw.extend_from_slice(&[0xbe, 0xde, 0, 3]);
    raw.extend_from_slice(&[0x22, 0x01, 0x02, 0x03]); // id 2, abs-send-time (3 bytes)
    raw.extend_from_slice(&[0x31, 0x00, 0x2a]); // id 3, transport-cc (2 bytes)
    raw.extend_from_slice(&[0x40, b'1']); // id 4, mid (1 byte)
    raw.extend_from_slice(&[0, 0, 0]); // padding to 12 bytes
    raw.extend((0..1000u32).map(|i| i as u8));
    raw
}

fn rtp_rewrite(c: &mut Criterion) {
    let raw = incoming_packet();
    let packet = rtp::Packet::unmarshal(&mut raw.as_slice()).expect("a valid RTP packet");
    assert_eq!(packet.payload.len(), 1000);
    let mut g = c.benchmark_group("rtp");
    g.bench_function("unmarshal 1000B", |b| {
        b.iter(|| black_box(rtp::Packet::unmarshal(&mut black_box(raw.as_slice())).expect("valid")))
    });
    let mut seq = 0u16;
    g.bench_function("rewrite+marshal 1000B", |b| {
        b.iter(|| {
            // What `forward` in openvidu-media/src/subscriber.rs does per packet and subscriber,
            // plus the sequence number the outgoing track assigns.
            let mut p = black_box(&packet).clone();
            seq = seq.wrapping_add(1);
            p.header.ssrc = 0x1234_5679;
            p.header.payload_type = 100;
            p.header.sequence_number = seq;
            p.header.extension = false;
            p.header.extension_profile = 0;
            p.header.extensions.clear();
            p.header.extensions_padding = 0;
            black_box(p.marshal().expect("marshals"))
        })
    });
    g.finish();
}

fn ids(c: &mut Criterion) {
    let ids = RandomIds;
    let owner = ids.connection_id();
    let mut g = c.benchmark_group("id");
    g.bench_function("session", |b| b.iter(|| black_box(ids.session_id())));
    g.bench_function("connection", |b| b.iter(|| black_box(ids.connection_id())));
    g.bench_function("token", |b| b.iter(|| black_box(ids.token_id())));
    g.bench_function("stream", |b| b.iter(|| black_box(ids.stream_id(Some(TypeOfVideo::Camera), &owner))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = rpc, rtp_rewrite, ids
}
criterion_main!(benches);
