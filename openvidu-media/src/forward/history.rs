//! The packets a published track forwarded last, kept once for all its subscribers, so that a
//! subscriber's NACK can be answered from them, and a subscriber whose connection comes up
//! just after a keyframe can start from it (`Forwarders::start_from_keyframe`).

use std::time::Instant;

use rtc::rtp;

use crate::seq::is_after;

/// Packets a track keeps for retransmission (a power of two). 512 packets hold 1.3 s of
/// 4 Mbit/s video and several seconds at usual bitrates: more than the NACK round trips a
/// retransmission can still help with, as libwebrtc keeps about one second.
pub(crate) const HISTORY_PACKETS: usize = 512;

/// A ring of the last [`HISTORY_PACKETS`] packets, by sequence number, and where the last
/// keyframe began. The payloads are shared with what was forwarded (`Bytes`): a slot costs a
/// header, not a copy of the packet.
pub(crate) struct PacketHistory {
    slots: Box<[Option<rtp::Packet>]>,
    /// The newest sequence number kept (in RTP's wrapping order), once a packet was.
    newest: Option<u16>,
    /// The first packet of the newest keyframe kept, and when it was forwarded.
    keyframe: Option<(u16, Instant)>,
}

impl Default for PacketHistory {
    fn default() -> Self {
        Self { slots: vec![None; HISTORY_PACKETS].into_boxed_slice(), newest: None, keyframe: None }
    }
}

impl PacketHistory {
    /// Keeps `packet`, in place of the one `HISTORY_PACKETS` sequence numbers before it.
    /// `keyframe_at` is when it was forwarded if it starts a keyframe (`None` if it does not).
    pub(crate) fn push(&mut self, packet: &rtp::Packet, keyframe_at: Option<Instant>) {
        let seq = packet.header.sequence_number;
        let slot = usize::from(seq) % self.slots.len();
        self.slots[slot] = Some(packet.clone());
        if self.newest.is_none_or(|newest| is_after(seq, newest)) {
            self.newest = Some(seq);
        }
        // A late packet (reordered, retransmitted) does not take an older keyframe's place.
        if let Some(at) = keyframe_at
            && self.keyframe.is_none_or(|(k, _)| k == seq || is_after(seq, k))
        {
            self.keyframe = Some((seq, at));
        }
    }

    /// The packet with sequence number `seq`, if it is still kept.
    pub(crate) fn get(&self, seq: u16) -> Option<&rtp::Packet> {
        let slot = usize::from(seq) % self.slots.len();
        self.slots[slot].as_ref().filter(|p| p.header.sequence_number == seq)
    }

    /// The packets from the first of the newest keyframe to the newest packet, in order, if
    /// that keyframe was forwarded at `not_before` or later and every one of them is still
    /// kept: what a receiver needs to decode from that keyframe on. `None` otherwise (no
    /// keyframe kept, too old, or a packet missing: the publisher's loss, or overwritten).
    pub(crate) fn since_keyframe(&self, not_before: Instant) -> Option<Vec<rtp::Packet>> {
        let (first, at) = self.keyframe?;
        let newest = self.newest?;
        if at < not_before {
            return None;
        }
        let count = usize::from(newest.wrapping_sub(first)) + 1;
        if count > self.slots.len() {
            return None;
        }
        (0..count).map(|i| self.get(first.wrapping_add(i as u16)).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header { sequence_number: seq, ..Default::default() },
            payload: bytes::Bytes::from(seq.to_be_bytes().to_vec()),
        }
    }

    #[test]
    fn the_last_packets_are_kept_across_the_sequence_wrap() {
        let mut history = PacketHistory::default();
        let first = 65_535 - 100;
        for seq in (first..=65_535).chain(0..200) {
            history.push(&packet(seq), None);
        }
        for seq in (65_535 - 100..=65_535).chain(0..200) {
            let kept = history.get(seq).expect("a recent packet is kept");
            assert_eq!(kept.header.sequence_number, seq);
            assert_eq!(kept.payload[..], seq.to_be_bytes());
        }
    }

    #[test]
    fn an_overwritten_or_never_seen_packet_is_not_returned() {
        let mut history = PacketHistory::default();
        for seq in 0..(HISTORY_PACKETS as u16 + 10) {
            history.push(&packet(seq), None);
        }
        assert!(history.get(5).is_none(), "overwritten by {}", 5 + HISTORY_PACKETS);
        assert!(history.get(5 + HISTORY_PACKETS as u16).is_some());
        assert!(history.get(40_000).is_none());
        assert!(PacketHistory::default().get(0).is_none());
    }

    fn seqs(packets: &[rtp::Packet]) -> Vec<u16> {
        packets.iter().map(|p| p.header.sequence_number).collect()
    }

    #[test]
    fn a_recent_keyframe_and_every_packet_after_it_are_handed_out_across_the_wrap() {
        let t0 = Instant::now();
        let mut history = PacketHistory::default();
        assert!(history.since_keyframe(t0).is_none(), "nothing kept");
        for seq in 65_530..=65_535 {
            history.push(&packet(seq), None);
        }
        assert!(history.since_keyframe(t0).is_none(), "no keyframe kept");
        history.push(&packet(65_534), Some(t0));
        assert_eq!(seqs(&history.since_keyframe(t0).expect("from the keyframe")), [65_534, 65_535]);
        for seq in 0..3 {
            history.push(&packet(seq), None);
        }
        let from = history.since_keyframe(t0).expect("from the keyframe");
        assert_eq!(seqs(&from), [65_534, 65_535, 0, 1, 2]);
        assert_eq!(from[2].payload[..], 0u16.to_be_bytes());
        // A later keyframe takes its place; a late packet of an older one does not.
        let t1 = t0 + std::time::Duration::from_millis(30);
        history.push(&packet(2), Some(t1));
        history.push(&packet(65_535), Some(t1));
        assert_eq!(seqs(&history.since_keyframe(t1).expect("from the newer keyframe")), [2]);
    }

    #[test]
    fn an_old_keyframe_or_one_with_a_packet_missing_after_it_is_not_handed_out() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_millis(1);
        let mut history = PacketHistory::default();
        history.push(&packet(10), Some(t0));
        history.push(&packet(11), None);
        assert!(history.since_keyframe(t0).is_some());
        assert!(history.since_keyframe(later).is_none(), "forwarded before the bound");

        // 13 never came (the publisher's loss): no receiver could decode past it.
        history.push(&packet(12), Some(later));
        history.push(&packet(14), None);
        assert!(history.since_keyframe(later).is_none());
        history.push(&packet(13), None);
        assert_eq!(seqs(&history.since_keyframe(later).expect("the gap filled")), [12, 13, 14]);

        // More packets after the keyframe than the ring holds: the keyframe is overwritten.
        for seq in 15..(15 + HISTORY_PACKETS as u16) {
            history.push(&packet(seq), None);
        }
        assert!(history.since_keyframe(later).is_none());
    }
}
