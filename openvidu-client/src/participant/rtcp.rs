//! Keyframe requests for the application: the webrtc crate's interceptor chain ends with one
//! that drops every RTCP packet no interceptor marked for the application, so without this a
//! publishing bot never sees the SFU's keyframe requests and answers none of them, unlike a
//! browser's encoder.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

/// Whether an RTCP packet asks for a keyframe (PLI or FIR).
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    packet.as_any().is::<PictureLossIndication>() || packet.as_any().is::<FullIntraRequest>()
}

/// Lets inbound RTCP carrying a keyframe request through to the application: it comes out of
/// the local track's `TrackLocal::poll`. The rest stays in the chain (which ends it): nobody
/// reads it, and the crate logs every event a full queue drops.
#[derive(Default)]
pub(crate) struct KeyframeRequestsToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
        {
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

impl Interceptor for KeyframeRequestsToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::sansio::Protocol;
    use rtc::shared::TransportMessage;

    use super::*;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TransportMessage { now: Instant::now(), transport: Default::default(), message: Packet::Rtcp(packets).into() }
    }

    fn delivered(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> bool {
        let mut marker = KeyframeRequestsToApplication::default();
        marker.handle_read(inbound(packets)).expect("read");
        let msg = marker.poll_read().expect("passed on");
        msg.message.has(&Attribute::DeliverToApplication)
    }

    #[test]
    fn keyframe_requests_reach_the_application_and_reports_do_not() {
        assert!(delivered(vec![Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 })]));
        assert!(delivered(vec![
            Box::new(ReceiverReport::default()),
            Box::new(FullIntraRequest { sender_ssrc: 1, media_ssrc: 2, fir: vec![] }),
        ]));
        assert!(!delivered(vec![Box::new(ReceiverReport::default())]));
    }
}
