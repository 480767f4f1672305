//! A subscriber's RTCP feedback about what it receives: the interceptor that hands keyframe
//! requests (PLI/FIR) and NACKs to the application, and the task that acts on them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use crate::forward::Forwarder;
use crate::keyframe::{KeyframeNeed, is_keyframe_request};
use crate::publisher::TrackFanout;

/// Whether the application acts on an inbound RTCP packet: a keyframe request, or a NACK.
fn is_for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    is_keyframe_request(packet) || packet.as_any().is::<TransportLayerNack>()
}

/// Marks inbound PLI, FIR and NACK for the application and drops other inbound RTCP at the end
/// of the chain, so that they come out of `TrackLocal::poll`.
#[derive(Default)]
pub(crate) struct FeedbackMarker {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackMarker {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> =
                packets.iter().filter(|p| is_for_application(p.as_ref())).cloned().collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackMarker {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Acts on one leg's feedback until its track is unbound: keyframe requests go on to the
/// publisher; NACKs are answered from the track's history when `retransmits` (the leg's packets
/// do not go through its connection's pipeline, whose NACK responder would answer them).
pub(crate) async fn feedback(
    source: Arc<TrackFanout>,
    track: Arc<TrackLocalStaticRTP>,
    leg: Arc<Forwarder>,
    retransmits: bool,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            source.request_keyframe(KeyframeNeed::Recovery);
        }
        if !retransmits {
            continue;
        }
        for nack in packets.iter().filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>()) {
            if nack.media_ssrc != leg.ssrc() {
                continue;
            }
            let seqs = nack.nacks.iter().flat_map(|pair| pair.into_iter());
            let found = source.forwarders.retransmit(&leg, seqs);
            tracing::trace!(ssrc = nack.media_ssrc, found, "NACK answered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::sansio::Protocol;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket { now: Instant::now(), transport: Default::default(), message: Packet::Rtcp(packets).into() }
    }

    #[test]
    fn keyframe_requests_and_nacks_reach_the_application_and_nothing_else() {
        let mut marker = FeedbackMarker::default();
        marker
            .handle_read(inbound(vec![
                Box::new(ReceiverReport::default()),
                Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 }),
                Box::new(TransportLayerNack { sender_ssrc: 1, media_ssrc: 2, nacks: vec![] }),
            ]))
            .expect("read");
        let out = marker.poll_read().expect("delivered");
        assert!(out.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &out.message.packet else { panic!("RTCP") };
        assert_eq!(packets.len(), 2);
        assert!(is_keyframe_request(packets[0].as_ref()));
        assert!(packets[1].as_any().is::<TransportLayerNack>());

        marker.handle_read(inbound(vec![Box::new(ReceiverReport::default())])).expect("read");
        assert!(marker.poll_read().is_none(), "a receiver report stops here");
    }
}
