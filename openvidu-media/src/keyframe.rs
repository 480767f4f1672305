//! Keyframe requests: the sans-IO rate limiter for PLIs sent to a publisher, and what asks it
//! (subscribers' PLI/FIR come through `crate::feedback`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::mpsc;

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

/// Why a receiver of a published video track wants a keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyframeNeed {
    /// It decoded the track before and cannot any more: it lost packets, lagged behind, or
    /// asked with a PLI/FIR of its own. At most one such request per interval reaches the
    /// publisher, so that a lossy receiver cannot turn the stream into keyframes only.
    Recovery,
    /// It has had no keyframe yet: a subscriber whose connection just came up, a recording that
    /// starts. Asked for at once, unless a keyframe is already on its way: one every joiner
    /// waits for is its time to first frame.
    First,
}

/// Merges keyframe requests for one published video track.
///
/// Sans-IO: it takes `now` and never reads a clock. A request is never lost: it is answered by
/// the next keyframe that passes ([`KeyframeLimiter::handle_keyframe`]), and it is sent to the
/// publisher unless
/// - a request is already out and its keyframe has not passed yet (that keyframe serves every
///   receiver that asked meanwhile, as all of them are receiving by then); it is asked again if
///   no keyframe came within `min_interval` (the request or the keyframe was lost);
/// - it is a [`KeyframeNeed::Recovery`] less than `min_interval` after the last request: it
///   is sent when the interval ends, merged with any others that came meanwhile.
///
/// ```
/// use std::time::{Duration, Instant};
/// use openvidu_media::{KeyframeLimiter, KeyframeNeed, KeyframeOut};
///
/// let t0 = Instant::now();
/// let ms = Duration::from_millis;
/// let mut limiter = KeyframeLimiter::new(ms(500));
/// limiter.handle_request(KeyframeNeed::First);
/// assert_eq!(limiter.poll(t0), Some(KeyframeOut::SendRequest));
/// // Asked before the keyframe came: that keyframe will do.
/// limiter.handle_request(KeyframeNeed::First);
/// assert_eq!(limiter.poll(t0 + ms(10)), Some(KeyframeOut::Timeout(t0 + ms(500))));
/// limiter.handle_keyframe();
/// assert_eq!(limiter.poll(t0 + ms(40)), None);
/// // A new subscriber after the keyframe passed: asked at once.
/// limiter.handle_request(KeyframeNeed::First);
/// assert_eq!(limiter.poll(t0 + ms(60)), Some(KeyframeOut::SendRequest));
/// limiter.handle_keyframe();
/// // A lossy subscriber: not before the interval since the last request.
/// limiter.handle_request(KeyframeNeed::Recovery);
/// assert_eq!(limiter.poll(t0 + ms(100)), Some(KeyframeOut::Timeout(t0 + ms(560))));
/// assert_eq!(limiter.poll(t0 + ms(560)), Some(KeyframeOut::SendRequest));
/// ```
#[derive(Clone, Debug)]
pub struct KeyframeLimiter {
    min_interval: Duration,
    last_sent: Option<Instant>,
    /// A request went out and no keyframe has passed since.
    awaiting: bool,
    /// The most pressing need not answered yet, if any. It stays after its request is sent,
    /// until a keyframe passes: a request that goes unanswered is sent again when the interval
    /// ends. Publishers do drop requests: Chromium ignores a PLI that comes less than 300 ms
    /// after the one before it (libwebrtc's minimum keyframe send interval), so a subscriber
    /// connecting just after the publisher's first keyframe passed, whose PLI follows the
    /// publisher's start's within 300 ms, would otherwise wait for no keyframe at all.
    pending: Option<KeyframeNeed>,
}

impl KeyframeLimiter {
    /// A limiter that sends at most one [`KeyframeNeed::Recovery`] request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last_sent: None, awaiting: false, pending: None }
    }

    /// A receiver (or the node itself) wants a keyframe.
    pub fn handle_request(&mut self, need: KeyframeNeed) {
        self.pending = self.pending.max(Some(need));
    }

    /// A keyframe passed on its way to the receivers: it answers every request made before.
    pub fn handle_keyframe(&mut self) {
        self.awaiting = false;
        self.pending = None;
    }

    /// Whether the limiter wants to hear of the next keyframe (a request is pending or out).
    pub fn is_waiting_for_keyframe(&self) -> bool {
        // A request out (`awaiting`) keeps its need pending until a keyframe passes.
        self.pending.is_some()
    }

    /// What to do at `now`: send, wait until a deadline, or nothing (`None`).
    pub fn poll(&mut self, now: Instant) -> Option<KeyframeOut> {
        let need = self.pending?;
        if let Some(last) = self.last_sent {
            let next = last + self.min_interval;
            let held = self.awaiting || need == KeyframeNeed::Recovery;
            if held && now < next {
                return Some(KeyframeOut::Timeout(next));
            }
        }
        self.awaiting = true;
        self.last_sent = Some(now);
        Some(KeyframeOut::SendRequest)
    }
}

/// The way into the keyframe control of one published video track (cheap to clone): receivers'
/// requests, and the keyframes the reading task sees pass while a request is pending or out.
#[derive(Clone, Debug)]
pub(crate) struct KeyframeRequests {
    tx: mpsc::UnboundedSender<KeyframeEvent>,
    watching: Arc<AtomicBool>,
}

/// What the keyframe control of a track hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyframeEvent {
    /// A receiver wants a keyframe.
    Wanted(KeyframeNeed),
    /// A keyframe passed.
    Passed,
}

impl KeyframeRequests {
    /// A channel and the control's end of it.
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<KeyframeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, watching: Arc::default() }, rx)
    }

    /// Asks for a keyframe.
    pub(crate) fn request(&self, need: KeyframeNeed) {
        let _ = self.tx.send(KeyframeEvent::Wanted(need));
    }

    /// Whether the control wants to hear of the next keyframe (one relaxed load: the reading
    /// task asks this for every packet before it looks at the payload).
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    /// Says whether the control wants to hear of the next keyframe.
    pub(crate) fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::Relaxed);
    }

    /// A keyframe passed (told once until the control watches again).
    pub(crate) fn keyframe_passed(&self) {
        if self.watching.swap(false, Ordering::Relaxed) {
            let _ = self.tx.send(KeyframeEvent::Passed);
        }
    }
}

/// Whether an RTCP packet asks for a keyframe (PLI or FIR).
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}
