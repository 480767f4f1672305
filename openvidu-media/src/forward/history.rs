//! The packets a published track forwarded last, kept once for all its subscribers, so that a
//! subscriber's NACK can be answered from them.

use rtc::rtp;

/// Packets a track keeps for retransmission (a power of two). 512 packets hold 1.3 s of
/// 4 Mbit/s video and several seconds at usual bitrates: more than the NACK round trips a
/// retransmission can still help with, as libwebrtc keeps about one second.
pub(crate) const HISTORY_PACKETS: usize = 512;

/// A ring of the last [`HISTORY_PACKETS`] packets, by sequence number. The payloads are shared
/// with what was forwarded (`Bytes`): a slot costs a header, not a copy of the packet.
pub(crate) struct PacketHistory {
    slots: Box<[Option<rtp::Packet>]>,
}

impl Default for PacketHistory {
    fn default() -> Self {
        Self { slots: vec![None; HISTORY_PACKETS].into_boxed_slice() }
    }
}

impl PacketHistory {
    /// Keeps `packet`, in place of the one `HISTORY_PACKETS` sequence numbers before it.
    pub(crate) fn push(&mut self, packet: &rtp::Packet) {
        let slot = usize::from(packet.header.sequence_number) % self.slots.len();
        self.slots[slot] = Some(packet.clone());
    }

    /// The packet with sequence number `seq`, if it is still kept.
    pub(crate) fn get(&self, seq: u16) -> Option<&rtp::Packet> {
        let slot = usize::from(seq) % self.slots.len();
        self.slots[slot].as_ref().filter(|p| p.header.sequence_number == seq)
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
            history.push(&packet(seq));
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
            history.push(&packet(seq));
        }
        assert!(history.get(5).is_none(), "overwritten by {}", 5 + HISTORY_PACKETS);
        assert!(history.get(5 + HISTORY_PACKETS as u16).is_some());
        assert!(history.get(40_000).is_none());
        assert!(PacketHistory::default().get(0).is_none());
    }
}
