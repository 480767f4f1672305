//! A publisher's last interceptor, where the fan-out reads its packets.
//!
//! A packet of a published track used to cross three tasks on the media thread: the mux hands
//! the datagram to the publisher's connection, whose driver decrypts it and passes it through its
//! interceptors and handlers to the remote track's channel, from which the track's fan-out task
//! reads it and forwards it. At a few subscribers that path is most of the node's work per packet
//! (`perf` at one subscriber: the publisher's driver 43 % of the server, the fan-out 13 %).
//!
//! [`InlineFanout`] sits last in the publisher connection's chain, after the NACK generator, the
//! TWCC receiver and the receiver reports (which still see every packet, so the publisher gets
//! the same feedback). A packet of a track whose fan-out has started is forwarded right there
//! and goes no further: not through the handler that looks up its track, nor the track's channel,
//! nor the task reading it. A retransmission the NACK generator asked for is such a packet too (RTX
//! is not negotiated: it comes again with its own SSRC and sequence number). Anything else goes on
//! as before: packets of an SSRC no track has claimed yet (the first ones, which make the track
//! start), and RTCP, filtered as [`FeedbackMarker`] does for every endpoint.

use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

use super::TrackFanout;
use crate::feedback::FeedbackMarker;
use crate::transport::SendBatch;

/// Forwards the RTP of a publisher's started tracks from inside its connection's read pipeline
/// (see the module docs); otherwise a [`FeedbackMarker`].
pub(crate) struct InlineFanout {
    tracks: Vec<Arc<TrackFanout>>,
    batch: SendBatch,
    marker: FeedbackMarker,
}

impl InlineFanout {
    /// The interceptor of a publisher with these tracks.
    pub(crate) fn new(tracks: Vec<Arc<TrackFanout>>) -> Self {
        Self { tracks, batch: SendBatch::default(), marker: FeedbackMarker::default() }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for InlineFanout {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let track = match &msg.message.packet {
            Packet::Rtp(rtp) => self.tracks.iter().find(|t| t.forwards_inline(rtp.header.ssrc)),
            _ => None,
        };
        let Some(track) = track else { return self.marker.handle_read(msg) };
        // The packet is RTP (its track was found by its SSRC): taken out, it goes no further.
        if let Packet::Rtp(rtp) = std::mem::replace(&mut msg.message.packet, Packet::Rtcp(Vec::new())) {
            track.on_packet(rtp, &mut self.batch);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.marker.poll_read()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.marker.handle_write(msg)
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.marker.poll_write()
    }
}

impl Interceptor for InlineFanout {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use rtc::interceptor::Attribute;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::sender_report::SenderReport;
    use rtc::rtp;
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};

    use super::super::STARTED;
    use super::*;
    use crate::endpoint::lock;
    use crate::forward::testing::{Kept, leg};

    const PUBLISHED: u32 = 1111;

    /// An audio track of the publisher with one subscriber's leg (SSRC 22, payload type 111).
    fn track_with_leg() -> (Arc<TrackFanout>, Arc<Kept>) {
        let codec = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48_000,
                channels: 2,
                ..Default::default()
            },
            payload_type: 109,
        };
        let (track, _) = TrackFanout::new(RtpCodecKind::Audio, codec, std::time::Duration::ZERO);
        let sink = Arc::new(Kept::default());
        track.forwarders.add(leg(&sink, 22, 111));
        (track, sink)
    }

    fn read(ssrc: u32, seq: u16) -> TaggedPacket {
        let header = rtp::header::Header { ssrc, sequence_number: seq, payload_type: 109, ..Default::default() };
        let packet = rtp::Packet { header, payload: bytes::Bytes::from_static(&[1, 2, 3]) };
        TaggedPacket { now: Instant::now(), transport: Default::default(), message: Packet::Rtp(packet).into() }
    }

    fn read_rtcp(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket { now: Instant::now(), transport: Default::default(), message: Packet::Rtcp(packets).into() }
    }

    fn forwarded(sink: &Kept) -> Vec<(u32, u16, u8)> {
        lock(&sink.packets).iter().map(|p| (p.header.ssrc, p.header.sequence_number, p.header.payload_type)).collect()
    }

    #[test]
    fn a_started_tracks_packets_are_forwarded_in_the_chain_and_go_no_further() {
        let (track, sink) = track_with_leg();
        track.ssrc.store(u64::from(PUBLISHED) | STARTED, Ordering::Release);
        let mut inline = InlineFanout::new(vec![track.clone()]);

        for seq in [7, 8] {
            inline.handle_read(read(PUBLISHED, seq)).expect("read");
            assert!(inline.poll_read().is_none(), "the packet stops at the fan-out");
        }
        assert_eq!(forwarded(&sink), [(22, 7, 111), (22, 8, 111)], "rewritten for the leg");
        assert_eq!(track.received.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn other_packets_go_on_to_the_connection() {
        let (track, sink) = track_with_leg();
        let mut inline = InlineFanout::new(vec![track.clone()]);

        // Before the track starts, even an SSRC of 0 is not taken for it.
        for ssrc in [PUBLISHED, 0] {
            inline.handle_read(read(ssrc, 1)).expect("read");
            let out = inline.poll_read().expect("passed on");
            let Packet::Rtp(rtp) = out.message.packet else { panic!("RTP") };
            assert_eq!(rtp.header.ssrc, ssrc);
        }

        // Once it has started, another SSRC still goes on.
        track.ssrc.store(u64::from(PUBLISHED) | STARTED, Ordering::Release);
        inline.handle_read(read(2222, 1)).expect("read");
        assert!(inline.poll_read().is_some(), "an SSRC of no started track goes on");
        assert!(forwarded(&sink).is_empty());
        assert_eq!(track.received.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn rtcp_is_filtered_as_for_every_endpoint() {
        let (track, _) = track_with_leg();
        let mut inline = InlineFanout::new(vec![track]);
        inline.handle_read(read_rtcp(vec![Box::new(SenderReport::default())])).expect("read");
        assert!(inline.poll_read().is_none(), "a sender report stops here");
        inline
            .handle_read(read_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 })]))
            .expect("read");
        let out = inline.poll_read().expect("delivered");
        assert!(out.message.has(&Attribute::DeliverToApplication));
    }
}
