//! Receive statistics of subscriptions: what arrived per track, the sequence gaps, and the
//! forwarding latency read from synthetic payloads. The counters are plain structs fed one packet
//! at a time; no clock (the caller passes `now`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use openvidu_core::id::{ConnectionId, StreamId};

use super::synthetic;

/// Latency samples kept per track (the most recent ones).
pub(crate) const MAX_LATENCY_SAMPLES: usize = 16_384;

/// What one received track (audio or video) of a subscription has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackStats {
    /// RTP packets received (retransmissions included).
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Frames: for video, packets with the marker bit (the last packet of a frame); for audio,
    /// packets.
    pub frames: u64,
    /// VP8 keyframe starts seen (video only).
    pub keyframes: u64,
    /// Packets never received: the span of sequence numbers seen minus the packets received,
    /// as RTCP receiver reports count it.
    pub lost: u64,
    /// Send-to-receive delays read from the send timestamps of synthetic payloads (the most
    /// recent 16 384 of them), received meaning handed to the subscription by its track: they
    /// include the time the packet waited in this process.
    pub latency: Vec<Duration>,
    /// Send-to-socket delays of the same packets: to the kernel's receive timestamp of the
    /// datagram at the subscription's socket (see `arrival`), which leaves out this process's
    /// own wait. Empty where the platform gives no receive timestamps.
    pub socket_latency: Vec<Duration>,
    /// When the first packet was handed to the subscription by its track (since the counters
    /// started or were reset).
    pub first_packet_at: Option<Instant>,
    /// When the first VP8 keyframe start was (video only): the first frame a decoder can show.
    pub first_keyframe_at: Option<Instant>,
}

impl TrackStats {
    /// The `p`-th percentile (0.0–1.0) of [`latency`](Self::latency), `None` without samples.
    pub fn latency_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.latency, p)
    }

    /// The `p`-th percentile (0.0–1.0) of [`socket_latency`](Self::socket_latency).
    pub fn socket_latency_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.socket_latency, p)
    }
}

/// The `p`-th percentile (0.0–1.0, nearest rank) of `samples`, `None` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

/// Receive statistics of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// The subscribed stream.
    pub stream_id: StreamId,
    /// Its publisher.
    pub publisher: ConnectionId,
    /// Whether the subscription's peer connection is connected.
    pub connected: bool,
    /// When the subscription's peer connection first reported connected, if it has.
    pub connected_at: Option<Instant>,
    /// The audio track.
    pub audio: TrackStats,
    /// The video track.
    pub video: TrackStats,
}

impl StreamStats {
    /// Packets of both tracks.
    pub fn packets(&self) -> u64 {
        self.audio.packets + self.video.packets
    }
}

/// The kind of a received track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Audio,
    Video,
}

/// Counts one track's packets. Sans-IO.
#[derive(Debug)]
pub(crate) struct TrackCounter {
    kind: Kind,
    packets: u64,
    bytes: u64,
    frames: u64,
    keyframes: u64,
    /// Extended (wrap-counted) first and highest sequence numbers.
    base_seq: Option<u64>,
    max_seq: u64,
    /// Packets expected from the sequence spans of earlier tracks (before a
    /// [`restart_sequence`](Self::restart_sequence)).
    expected_before: u64,
    latency: VecDeque<Duration>,
    socket_latency: VecDeque<Duration>,
    first_packet_at: Option<Instant>,
    first_keyframe_at: Option<Instant>,
}

/// Appends `sample`, dropping the oldest past [`MAX_LATENCY_SAMPLES`].
fn keep_recent(samples: &mut VecDeque<Duration>, sample: Duration) {
    if samples.len() == MAX_LATENCY_SAMPLES {
        samples.pop_front();
    }
    samples.push_back(sample);
}

impl TrackCounter {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            packets: 0,
            bytes: 0,
            frames: 0,
            keyframes: 0,
            base_seq: None,
            max_seq: 0,
            expected_before: 0,
            latency: VecDeque::new(),
            socket_latency: VecDeque::new(),
            first_packet_at: None,
            first_keyframe_at: None,
        }
    }

    /// One packet handed over at `now` (and `now_micros`, the same instant in microseconds
    /// since the UNIX epoch), which reached the socket at `arrived_micros` if known.
    pub(crate) fn on_packet(
        &mut self,
        seq: u16,
        marker: bool,
        payload: &[u8],
        (now, now_micros): (Instant, u64),
        arrived_micros: Option<u64>,
    ) {
        self.first_packet_at.get_or_insert(now);
        self.packets += 1;
        self.bytes += payload.len() as u64;
        match self.kind {
            Kind::Audio => self.frames += 1,
            Kind::Video => {
                if marker {
                    self.frames += 1;
                }
                if synthetic::vp8_is_keyframe_start(payload) {
                    self.keyframes += 1;
                    self.first_keyframe_at.get_or_insert(now);
                }
            }
        }
        self.sequence(seq);
        if let Some(sent) = synthetic::send_timestamp(payload) {
            keep_recent(&mut self.latency, Duration::from_micros(now_micros.saturating_sub(sent)));
            if let Some(arrived) = arrived_micros {
                keep_recent(&mut self.socket_latency, Duration::from_micros(arrived.saturating_sub(sent)));
            }
        }
    }

    fn sequence(&mut self, seq: u16) {
        let Some(_) = self.base_seq else {
            // Start one cycle up so that slightly older packets still extend below the base.
            let ext = (1 << 16) + u64::from(seq);
            self.base_seq = Some(ext);
            self.max_seq = ext;
            return;
        };
        let max16 = self.max_seq as u16;
        let delta = seq.wrapping_sub(max16);
        if delta != 0 && delta < 0x8000 {
            // Ahead of the highest seen (maybe across a wrap).
            self.max_seq += u64::from(delta);
        }
    }

    /// Packets expected from the current track's sequence span.
    fn expected_now(&self) -> u64 {
        self.base_seq.map(|base| self.max_seq - base + 1).unwrap_or(0)
    }

    /// The packets come from a new track now (a new peer connection after a media
    /// reconnection): its sequence numbers start anywhere. The counts go on; the loss count
    /// keeps what the earlier tracks lost.
    pub(crate) fn restart_sequence(&mut self) {
        self.expected_before += self.expected_now();
        self.base_seq = None;
        self.max_seq = 0;
    }

    pub(crate) fn snapshot(&self) -> TrackStats {
        let expected = self.expected_before + self.expected_now();
        TrackStats {
            packets: self.packets,
            bytes: self.bytes,
            frames: self.frames,
            keyframes: self.keyframes,
            lost: expected.saturating_sub(self.packets),
            latency: self.latency.iter().copied().collect(),
            socket_latency: self.socket_latency.iter().copied().collect(),
            first_packet_at: self.first_packet_at,
            first_keyframe_at: self.first_keyframe_at,
        }
    }

    /// Forgets everything counted so far (the sequence tracking restarts with the next packet).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_sequence_keeps_the_counts_and_the_losses() {
        let mut c = TrackCounter::new(Kind::Audio);
        for seq in [100u16, 101, 103] {
            c.on_packet(seq, true, &[0; 10], (Instant::now(), 0), None);
        }
        assert_eq!((c.snapshot().packets, c.snapshot().lost), (3, 1));
        // A new track starting far away: no phantom losses.
        c.restart_sequence();
        for seq in [40_000u16, 40_001, 40_002] {
            c.on_packet(seq, true, &[0; 10], (Instant::now(), 0), None);
        }
        let s = c.snapshot();
        assert_eq!((s.packets, s.bytes, s.frames, s.lost), (6, 60, 6, 1));
        // Restarting before any packet of the new track changes nothing.
        c.restart_sequence();
        c.restart_sequence();
        assert_eq!(c.snapshot().lost, 1);
        c.on_packet(7, true, &[], (Instant::now(), 0), None);
        c.on_packet(9, true, &[], (Instant::now(), 0), None);
        assert_eq!((c.snapshot().packets, c.snapshot().lost), (8, 2));
        c.reset();
        assert_eq!(c.snapshot(), TrackStats::default());
    }
}
