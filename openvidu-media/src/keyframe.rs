//! Keyframe requests: the sans-IO rate limiter for PLIs sent to a publisher, and the
//! interceptor that lets subscribers' PLI/FIR reach the application.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

#[cfg(test)]
mod tests;

/// What a [`KeyframeLimiter`] wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeOut {
    /// Send one keyframe request to the publisher now.
    SendRequest,
    /// A request is pending: call [`KeyframeLimiter::poll`] again at this instant.
    Timeout(Instant),
}

/// Merges keyframe requests for one published video track so that at most one PLI per
/// `min_interval` reaches the publisher.
///
/// Sans-IO: it takes `now` and never reads a clock. A request inside the interval is not lost: it
/// is sent when the interval ends, merged with any others that came meanwhile.
///
/// ```
/// use std::time::{Duration, Instant};
/// use openvidu_media::{KeyframeLimiter, KeyframeOut};
///
/// let t0 = Instant::now();
/// let mut limiter = KeyframeLimiter::new(Duration::from_millis(500));
/// limiter.handle_request(t0);
/// assert_eq!(limiter.poll(t0), Some(KeyframeOut::SendRequest));
/// limiter.handle_request(t0 + Duration::from_millis(100));
/// assert_eq!(limiter.poll(t0 + Duration::from_millis(100)),
///            Some(KeyframeOut::Timeout(t0 + Duration::from_millis(500))));
/// assert_eq!(limiter.poll(t0 + Duration::from_millis(500)), Some(KeyframeOut::SendRequest));
/// assert_eq!(limiter.poll(t0 + Duration::from_millis(600)), None);
/// ```
#[derive(Clone, Debug)]
pub struct KeyframeLimiter {
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeLimiter {
    /// A limiter that sends at most one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last_sent: None, pending: false }
    }

    /// A subscriber (or the node itself) asked for a keyframe at `now`.
    pub fn handle_request(&mut self, _now: Instant) {
        self.pending = true;
    }

    /// What to do at `now`: send, wait until a deadline, or nothing (`None`).
    pub fn poll(&mut self, now: Instant) -> Option<KeyframeOut> {
        if !self.pending {
            return None;
        }
        match self.last_sent {
            Some(last) if now < last + self.min_interval => Some(KeyframeOut::Timeout(last + self.min_interval)),
            _ => {
                self.pending = false;
                self.last_sent = Some(now);
                Some(KeyframeOut::SendRequest)
            }
        }
    }
}

/// Whether an RTCP packet asks for a keyframe (PLI or FIR).
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// Marks inbound PLI/FIR for the application and drops other inbound RTCP at the end of the
/// chain, so a subscriber's keyframe requests come out of `TrackLocal::poll`.
#[derive(Default)]
pub(crate) struct KeyframeRequestMarker {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestMarker {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> =
                packets.iter().filter(|p| is_keyframe_request(p.as_ref())).cloned().collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
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

impl Interceptor for KeyframeRequestMarker {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
