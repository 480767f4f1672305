//! The fan-out's hot path: every packet of a published track written to each subscriber's
//! peer connection where it was read (at the end of the publisher connection's read pipeline,
//! `publisher::InlineFanout`), without a task or a channel hop per subscriber.
//!
//! In mux mode (the default) a leg encrypts the packet itself, with an SRTP context of its
//! subscriber's connection, and queues the datagram on a [`SendBatch`]; once every leg has its
//! copy, the batch goes out with one `sendmmsg` per socket ([`crate::direct`]). The packets
//! also go into the track's [`PacketHistory`], from which a subscriber's NACK is answered. In
//! range mode (a UDP port per connection) a leg hands the packet to its local track instead,
//! and the connection's driver sends it through its own pipeline (which keeps its own history
//! and sends its own reports). That write is polled once: a driver whose channel is full (a
//! subscriber that cannot keep up) loses the packet, as a lagging receiver of a broadcast
//! would, and the publisher is asked for a keyframe so that the subscriber can decode again.
//! No subscriber can hold up the others, and the reader never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use crate::endpoint::lock;
use crate::transport::SendBatch;

mod history;

pub(crate) use history::{HISTORY_PACKETS, PacketHistory};

/// What became of a packet handed to a [`RtpSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handed {
    /// Queued for sending.
    Queued,
    /// The sink could not take it without waiting: the packet is lost.
    Busy,
    /// The sink is not bound to a connection (yet, or any more): nothing to send to.
    Unbound,
}

/// Where a leg's packets go: a subscriber's peer connection.
pub(crate) trait RtpSink: Send + Sync {
    /// Hands over `packet` without waiting; datagrams to send may be queued on `batch`.
    fn try_write(&self, packet: rtp::Packet, batch: &mut SendBatch) -> Handed;

    /// Starts loading into the CPU's cache what [`try_write`](Self::try_write) will read, a leg
    /// or two before it is called: at `level` 1 the objects this sink points to, at level 2
    /// the objects those point to (each level read from the cache lines the one before
    /// loaded). A hint for [`Forwarders::forward`]'s loop, which changes nothing it computes;
    /// nothing by default.
    fn prefetch(&self, _level: u8) {}
}

/// Starts loading the cache line of `p` into the CPU's cache, ahead of its use. A hint: it
/// reads nothing the program sees and never faults, whatever the address (a no-op off x86-64).
///
/// The fan-out loop goes over hundreds of subscribers per packet, and each leg's objects (its
/// forwarder, sink, SRTP context and path, allocated apart) have left the cache since the last
/// packet, 12 ms earlier on average: loading them one after the other, at the moment each is
/// needed, was the largest cost of the loop's own code in `perf` (at 100 subscribers, 70 % of
/// the self time of `DirectLeg::try_write` was on its first load).
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, and changes no memory or register the
    // program reads, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl RtpSink for TrackLocalStaticRTP {
    fn try_write(&self, packet: rtp::Packet, _: &mut SendBatch) -> Handed {
        match self.write_rtp(packet).now_or_never() {
            Some(Ok(())) => Handed::Queued,
            Some(Err(e)) => {
                tracing::trace!(error = %e, "forwarding RTP failed");
                Handed::Unbound
            }
            None => Handed::Busy,
        }
    }
}

/// One subscriber's leg of a track: its sink and how its packets are rewritten.
pub(crate) struct Forwarder {
    sink: Arc<dyn RtpSink>,
    ssrc: u32,
    payload_type: u8,
    /// Whether the subscriber's connection is up (ICE and DTLS): until then it has no SRTP keys,
    /// and a packet handed to it would go through its whole write pipeline to be refused at
    /// the end (the webrtc crate logs a warning for each).
    media_up: Arc<AtomicBool>,
    dropped: AtomicU64,
}

impl Forwarder {
    /// A leg sending to `sink` with the subscriber's `ssrc` and negotiated `payload_type`, once
    /// `media_up` is set.
    pub(crate) fn new(sink: Arc<dyn RtpSink>, ssrc: u32, payload_type: u8, media_up: Arc<AtomicBool>) -> Self {
        Self { sink, ssrc, payload_type, media_up, dropped: AtomicU64::new(0) }
    }

    /// Packets this leg lost because its peer connection could not take them in time.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The subscriber's SSRC on this leg.
    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Starts loading the objects this leg points to (its connection's flag and its sink).
    fn prefetch(&self) {
        prefetch(Arc::as_ptr(&self.media_up));
        prefetch(Arc::as_ptr(&self.sink));
    }

    /// Hands `packet`, rewritten for this leg, to the peer connection without waiting.
    /// Returns false when the packet was dropped because the connection is busy.
    fn write(&self, mut packet: rtp::Packet, batch: &mut SendBatch) -> bool {
        if !self.media_up.load(Ordering::Acquire) {
            return true;
        }
        packet.header.ssrc = self.ssrc;
        packet.header.payload_type = self.payload_type;
        match self.sink.try_write(packet, batch) {
            // Unbound: not negotiated yet, or closing; nothing to recover.
            Handed::Queued | Handed::Unbound => true,
            Handed::Busy => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Identifies a registered [`Forwarder`] so that it can be removed.
pub(crate) type ForwarderKey = u64;

/// A snapshot of the registered legs.
type Legs = Arc<[(ForwarderKey, Arc<Forwarder>)]>;

/// The legs of one published track, and what it forwarded last. Registration copies the list;
/// the hot path only clones an `Arc` of it.
#[derive(Default)]
pub(crate) struct Forwarders {
    list: Mutex<Legs>,
    next: AtomicU64,
    /// What was forwarded last, for retransmissions (`None`: the track's subscribers do not ask
    /// for any, as for audio).
    history: Option<Mutex<PacketHistory>>,
}

impl Forwarders {
    /// No legs yet; forwarded packets are kept for retransmission if `keep_history`.
    pub(crate) fn new(keep_history: bool) -> Self {
        Self { history: keep_history.then(Mutex::default), ..Self::default() }
    }

    /// Adds a leg; packets read from now on reach it.
    pub(crate) fn add(&self, forwarder: Arc<Forwarder>) -> ForwarderKey {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let mut list = lock(&self.list);
        let mut legs = list.to_vec();
        legs.push((key, forwarder));
        *list = legs.into();
        key
    }

    /// Removes a leg. Unknown keys are ignored.
    pub(crate) fn remove(&self, key: ForwarderKey) {
        let mut list = lock(&self.list);
        if list.iter().any(|(k, _)| *k == key) {
            *list = list.iter().filter(|(k, _)| *k != key).cloned().collect();
        }
    }

    /// How many legs are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.list).len()
    }

    /// Writes `packet` to every leg and sends what they queued on `batch`. Header extensions
    /// are dropped once for all of them: their ids were negotiated with the publisher, not with
    /// the subscribers. `starts_keyframe` says whether the packet is the first of a keyframe
    /// (kept for [`start_from_keyframe`](Self::start_from_keyframe)). Returns true when some
    /// leg, or the send, lost the packet.
    pub(crate) fn forward(&self, mut packet: rtp::Packet, starts_keyframe: bool, batch: &mut SendBatch) -> bool {
        let legs = lock(&self.list).clone();
        let Some(((_, last), rest)) = legs.split_last() else {
            return false;
        };
        strip_extensions(&mut packet.header);
        if let Some(history) = &self.history {
            lock(history).push(&packet, starts_keyframe.then(|| batch.now()));
        }
        let mut dropped = false;
        for (i, (_, leg)) in rest.iter().enumerate() {
            prefetch_ahead(&legs, i);
            dropped |= !leg.write(packet.clone(), batch);
        }
        dropped |= !last.write(packet, batch);
        // A datagram the socket could not take is lost like a busy leg's packet.
        dropped |= batch.flush() > 0;
        dropped
    }

    /// Sends `leg` again the packets numbered `seqs` that are still kept (a subscriber's NACK).
    /// Returns how many were found.
    pub(crate) fn retransmit(&self, leg: &Forwarder, seqs: impl IntoIterator<Item = u16>) -> usize {
        let Some(history) = &self.history else {
            return 0;
        };
        let found: Vec<rtp::Packet> = {
            let history = lock(history);
            seqs.into_iter().filter_map(|seq| history.get(seq).cloned()).collect()
        };
        write_all(leg, found)
    }

    /// Sends `leg`, whose connection just came up, the last keyframe and every packet after
    /// it, if that keyframe was forwarded less than `max_age` before `now` and all of them are
    /// still kept: its subscriber can show a frame at once, instead of waiting for the
    /// publisher to answer a keyframe request (a round trip, then up to a frame interval). In
    /// a crowd of joiners the keyframe one of them asked for serves those that come up just
    /// after it too. Returns how many packets were sent (0: the leg needs a keyframe request).
    ///
    /// Packets forwarded to the leg between its connection coming up and this call are sent
    /// again (the receiver drops a duplicate); one forwarded while this call sends may arrive
    /// before the older ones, which a receiver's jitter buffer puts back in order.
    pub(crate) fn start_from_keyframe(&self, leg: &Forwarder, max_age: Duration, now: Instant) -> usize {
        if max_age.is_zero() {
            return 0;
        }
        let (Some(history), Some(not_before)) = (&self.history, now.checked_sub(max_age)) else {
            return 0;
        };
        let Some(packets) = lock(history).since_keyframe(not_before) else {
            return 0;
        };
        write_all(leg, packets)
    }
}

/// Writes `packets` to `leg` in one batch of its own; returns how many there were.
fn write_all(leg: &Forwarder, packets: Vec<rtp::Packet>) -> usize {
    let mut batch = SendBatch::default();
    let count = packets.len();
    for packet in packets {
        leg.write(packet, &mut batch);
    }
    batch.flush();
    count
}

/// Before the fan-out writes leg `i`: starts loading the legs after it, one level of their
/// objects deeper the nearer they are, so that each level was loaded a leg's work ago (about a
/// microsecond, longer than a load from memory) when the next level is read from it: the
/// forwarder four legs ahead, its flag and sink three ahead, the sink's objects two ahead, and
/// theirs one ahead.
fn prefetch_ahead(legs: &[(ForwarderKey, Arc<Forwarder>)], i: usize) {
    if let Some((_, leg)) = legs.get(i + 4) {
        prefetch(Arc::as_ptr(leg));
    }
    if let Some((_, leg)) = legs.get(i + 3) {
        leg.prefetch();
    }
    if let Some((_, leg)) = legs.get(i + 2) {
        leg.sink.prefetch(1);
    }
    if let Some((_, leg)) = legs.get(i + 1) {
        leg.sink.prefetch(2);
    }
}

/// Removes every header extension from `header`.
fn strip_extensions(header: &mut rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
}

/// A sink for tests of what reaches a leg.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A sink that keeps what it takes, or is busy.
    #[derive(Default)]
    pub(crate) struct Kept {
        pub(crate) packets: Mutex<Vec<rtp::Packet>>,
        pub(crate) busy: bool,
    }

    impl RtpSink for Kept {
        fn try_write(&self, packet: rtp::Packet, _: &mut SendBatch) -> Handed {
            if self.busy {
                return Handed::Busy;
            }
            lock(&self.packets).push(packet);
            Handed::Queued
        }
    }

    /// A leg to `sink`, its connection up.
    pub(crate) fn leg(sink: &Arc<Kept>, ssrc: u32, payload_type: u8) -> Arc<Forwarder> {
        Arc::new(Forwarder::new(sink.clone(), ssrc, payload_type, Arc::new(AtomicBool::new(true))))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Kept, leg};
    use super::*;

    fn packet(seq: u16) -> rtp::Packet {
        let mut header = rtp::header::Header {
            sequence_number: seq,
            ssrc: 1,
            payload_type: 100,
            extension: true,
            extension_profile: 0xBEDE,
            ..Default::default()
        };
        header.set_extension(3, bytes::Bytes::from_static(&[9])).expect("valid extension");
        rtp::Packet { header, payload: bytes::Bytes::from(vec![seq as u8; 10]) }
    }

    #[test]
    fn every_leg_gets_every_packet_in_order_rewritten_for_it() {
        let forwarders = Forwarders::new(true);
        let (a, b) = (Arc::new(Kept::default()), Arc::new(Kept::default()));
        forwarders.add(leg(&a, 11, 96));
        forwarders.add(leg(&b, 22, 120));
        for seq in [65534, 65535, 0, 1] {
            assert!(!forwarders.forward(packet(seq), false, &mut SendBatch::default()));
        }
        for (sink, ssrc, payload_type) in [(&a, 11, 96), (&b, 22, 120)] {
            let got = lock(&sink.packets);
            let seqs: Vec<u16> = got.iter().map(|p| p.header.sequence_number).collect();
            assert_eq!(seqs, [65534, 65535, 0, 1]);
            for p in got.iter() {
                assert_eq!((p.header.ssrc, p.header.payload_type), (ssrc, payload_type));
                assert!(!p.header.extension && p.header.extensions.is_empty());
                assert_eq!(p.payload[..], [p.header.sequence_number as u8; 10]);
            }
        }
    }

    /// A sink that logs, in one list shared by the legs, when it is prefetched and written.
    struct Logged {
        id: usize,
        log: Arc<Mutex<Vec<(usize, &'static str)>>>,
    }

    impl RtpSink for Logged {
        fn try_write(&self, _: rtp::Packet, _: &mut SendBatch) -> Handed {
            lock(&self.log).push((self.id, "write"));
            Handed::Queued
        }

        fn prefetch(&self, level: u8) {
            lock(&self.log).push((self.id, if level == 1 { "level 1" } else { "level 2" }));
        }
    }

    #[test]
    fn each_leg_is_prefetched_level_by_level_before_it_is_written() {
        let forwarders = Forwarders::new(true);
        let log = Arc::new(Mutex::new(Vec::new()));
        for id in 0..7 {
            let sink = Arc::new(Logged { id, log: log.clone() });
            forwarders.add(Arc::new(Forwarder::new(sink, id as u32, 96, Arc::new(AtomicBool::new(true)))));
        }
        assert!(!forwarders.forward(packet(1), false, &mut SendBatch::default()));
        let log = lock(&log);
        for id in 0..7 {
            let events: Vec<&str> = log.iter().filter(|(i, _)| *i == id).map(|(_, e)| *e).collect();
            let expected: &[&str] = match id {
                0 => &["write"],
                1 => &["level 2", "write"],
                _ => &["level 1", "level 2", "write"],
            };
            assert_eq!(events, expected, "leg {id}");
        }
        let writes: Vec<usize> = log.iter().filter(|(_, e)| *e == "write").map(|(i, _)| *i).collect();
        assert_eq!(writes, (0..7).collect::<Vec<_>>(), "written once each, in order");
        // Each level is asked for a leg's write ahead of the next: level 1 of leg 4 before leg 2's write.
        let at = |id, event| log.iter().position(|&(i, e)| i == id && e == event).expect("logged");
        assert!(at(4, "level 1") < at(2, "write") && at(2, "write") < at(4, "level 2"));
    }

    #[test]
    fn a_busy_leg_loses_the_packet_and_holds_up_no_other() {
        let forwarders = Forwarders::new(true);
        let slow = Arc::new(Kept { busy: true, ..Default::default() });
        let fine = Arc::new(Kept::default());
        let slow_leg = leg(&slow, 1, 96);
        forwarders.add(slow_leg.clone());
        forwarders.add(leg(&fine, 2, 96));
        assert!(forwarders.forward(packet(1), false, &mut SendBatch::default()));
        assert!(forwarders.forward(packet(2), false, &mut SendBatch::default()));
        assert_eq!(slow_leg.dropped(), 2);
        assert_eq!(lock(&fine.packets).len(), 2);
    }

    #[test]
    fn legs_are_added_and_removed_by_key() {
        let forwarders = Forwarders::new(true);
        let sink = Arc::new(Kept::default());
        let a = forwarders.add(leg(&sink, 1, 96));
        let b = forwarders.add(leg(&sink, 2, 96));
        assert_ne!(a, b);
        assert_eq!(forwarders.len(), 2);
        forwarders.remove(a);
        forwarders.remove(a);
        assert_eq!(forwarders.len(), 1);
        forwarders.forward(packet(5), false, &mut SendBatch::default());
        assert_eq!(lock(&sink.packets).iter().map(|p| p.header.ssrc).collect::<Vec<_>>(), [2]);
        forwarders.remove(b);
        assert_eq!(forwarders.len(), 0);
        assert!(!forwarders.forward(packet(6), false, &mut SendBatch::default()));
    }

    #[test]
    fn a_leg_gets_nothing_until_its_connection_is_up() {
        let forwarders = Forwarders::new(true);
        let sink = Arc::new(Kept::default());
        let media_up = Arc::new(AtomicBool::new(false));
        forwarders.add(Arc::new(Forwarder::new(sink.clone(), 7, 96, media_up.clone())));
        assert!(
            !forwarders.forward(packet(1), false, &mut SendBatch::default()),
            "a leg still connecting loses nothing it could use"
        );
        assert!(lock(&sink.packets).is_empty());
        media_up.store(true, Ordering::Release);
        forwarders.forward(packet(2), false, &mut SendBatch::default());
        assert_eq!(lock(&sink.packets).iter().map(|p| p.header.sequence_number).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_nack_is_answered_with_the_packets_still_kept_rewritten_for_its_leg() {
        let forwarders = Forwarders::new(true);
        let (a, b) = (Arc::new(Kept::default()), Arc::new(Kept::default()));
        let leg_a = leg(&a, 11, 96);
        forwarders.add(leg_a.clone());
        forwarders.add(leg(&b, 22, 120));
        for seq in 100..110 {
            forwarders.forward(packet(seq), false, &mut SendBatch::default());
        }
        lock(&a.packets).clear();
        assert_eq!(forwarders.retransmit(&leg_a, [103, 105, 7]), 2, "7 was never forwarded");
        let again = lock(&a.packets);
        assert_eq!(again.iter().map(|p| p.header.sequence_number).collect::<Vec<_>>(), [103, 105]);
        assert!(again.iter().all(|p| (p.header.ssrc, p.header.payload_type) == (11, 96) && !p.header.extension));
        assert_eq!(lock(&b.packets).len(), 10, "the other leg gets nothing again");
        drop(again);

        let without = Forwarders::new(false);
        without.add(leg_a.clone());
        without.forward(packet(1), false, &mut SendBatch::default());
        assert_eq!(without.retransmit(&leg_a, [1]), 0, "a track that keeps no history");
    }

    #[test]
    fn a_leg_coming_up_just_after_a_keyframe_starts_from_it() {
        let forwarders = Forwarders::new(true);
        let early = Arc::new(Kept::default());
        forwarders.add(leg(&early, 11, 96));
        let mut batch = SendBatch::default();
        forwarders.forward(packet(99), false, &mut batch);
        forwarders.forward(packet(100), true, &mut batch);
        let forwarded = batch.now();
        for seq in 101..104 {
            forwarders.forward(packet(seq), false, &mut batch);
        }

        let late = Arc::new(Kept::default());
        let late_leg = leg(&late, 22, 120);
        let max_age = Duration::from_millis(100);
        assert_eq!(forwarders.start_from_keyframe(&late_leg, max_age, forwarded + Duration::from_millis(60)), 4);
        let got = lock(&late.packets);
        assert_eq!(got.iter().map(|p| p.header.sequence_number).collect::<Vec<_>>(), [100, 101, 102, 103]);
        assert!(got.iter().all(|p| (p.header.ssrc, p.header.payload_type) == (22, 120) && !p.header.extension));
        drop(got);

        let later = Arc::new(Kept::default());
        let later_leg = leg(&later, 33, 96);
        assert_eq!(forwarders.start_from_keyframe(&later_leg, max_age, forwarded + Duration::from_millis(101)), 0);
        assert_eq!(forwarders.start_from_keyframe(&later_leg, Duration::ZERO, forwarded), 0, "turned off");
        assert!(lock(&later.packets).is_empty(), "too old a keyframe: the leg asks for one");
        let audio = Forwarders::new(false);
        assert_eq!(audio.start_from_keyframe(&later_leg, max_age, forwarded), 0, "a track that keeps no history");
    }

    #[test]
    fn an_unbound_track_is_not_a_drop() {
        let track = TrackLocalStaticRTP::new(rtc::media_stream::MediaStreamTrack::new(
            "stream".into(),
            "track".into(),
            "track".into(),
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video,
            vec![],
        ));
        assert_eq!(track.try_write(packet(1), &mut SendBatch::default()), Handed::Unbound);
    }
}
