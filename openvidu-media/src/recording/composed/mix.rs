//! The audio mixer: each stream's decoded PCM (48 kHz, stereo, s16) waits in a [`PcmBuffer`];
//! every 20 ms the compositor takes one chunk of each and sums them with saturation.

use std::collections::VecDeque;

/// Interleaved samples (both channels) in one 20 ms chunk: 960 frames × 2.
pub(crate) const CHUNK_SAMPLES: usize = 960 * 2;
/// The length of a chunk.
pub(crate) const CHUNK_MS: u64 = 20;
/// A buffer holding more than this (200 ms) drops its oldest samples: the stream's clock runs
/// faster than ours, or the mixer stalled.
const MAX_SAMPLES: usize = 10 * CHUNK_SAMPLES;
/// A buffer starts (and, after running dry, restarts) being mixed once it holds 60 ms, a
/// cushion against the jitter of the network and of the decoder's output.
const PRIME_SAMPLES: usize = 3 * CHUNK_SAMPLES;

/// One stream's decoded audio waiting to be mixed.
#[derive(Debug, Default)]
pub(crate) struct PcmBuffer {
    samples: VecDeque<i16>,
    primed: bool,
    /// Samples dropped because the buffer was full (for logs and tests).
    pub(crate) dropped: u64,
}

impl PcmBuffer {
    /// Appends interleaved stereo samples, dropping the oldest past 200 ms.
    pub(crate) fn push(&mut self, samples: &[i16]) {
        self.samples.extend(samples.iter().copied());
        if self.samples.len() > MAX_SAMPLES {
            // Keep whole stereo frames: drop an even number of samples.
            let excess = (self.samples.len() - MAX_SAMPLES + 1) & !1;
            self.samples.drain(..excess.min(self.samples.len()));
            self.dropped += excess as u64;
        }
    }

    /// Appends little-endian s16 bytes (an odd trailing byte is the caller's to keep).
    pub(crate) fn push_le_bytes(&mut self, bytes: &[u8]) {
        let samples: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        self.push(&samples);
    }

    /// Samples waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Adds the next chunk into `acc` (silence for what is missing).
    fn take_into(&mut self, acc: &mut [i32]) {
        if !self.primed {
            if self.samples.len() < PRIME_SAMPLES {
                return;
            }
            self.primed = true;
        }
        let n = acc.len().min(self.samples.len());
        for (a, s) in acc.iter_mut().zip(self.samples.drain(..n)) {
            *a += i32::from(s);
        }
        if n < acc.len() {
            // Ran dry: wait for a new cushion.
            self.primed = false;
        }
    }
}

/// Mixes one 20 ms chunk of every buffer into little-endian s16 bytes.
pub(crate) fn mix_chunk<'a>(buffers: impl IntoIterator<Item = &'a mut PcmBuffer>) -> Vec<u8> {
    let mut acc = [0i32; CHUNK_SAMPLES];
    for buffer in buffers {
        buffer.take_into(&mut acc);
    }
    let mut out = Vec::with_capacity(CHUNK_SAMPLES * 2);
    for a in acc {
        let s = a.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> Vec<i16> {
        bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }

    #[test]
    fn sums_with_saturation_and_silence_when_short() {
        let mut a = PcmBuffer::default();
        let mut b = PcmBuffer::default();
        a.push(&vec![30_000; 4 * CHUNK_SAMPLES]);
        b.push(&vec![10_000; 4 * CHUNK_SAMPLES]);
        let out = samples(&mix_chunk([&mut a, &mut b]));
        assert_eq!(out.len(), CHUNK_SAMPLES);
        assert!(out.iter().all(|&s| s == i16::MAX));
        let mut c = PcmBuffer::default();
        c.push(&vec![-30_000; 4 * CHUNK_SAMPLES]);
        let mut d = PcmBuffer::default();
        d.push(&vec![-10_000; 4 * CHUNK_SAMPLES]);
        assert!(samples(&mix_chunk([&mut c, &mut d])).iter().all(|&s| s == i16::MIN));
        // Below the cushion: silence, nothing consumed.
        let mut e = PcmBuffer::default();
        e.push(&[5; 100]);
        assert!(samples(&mix_chunk([&mut e])).iter().all(|&s| s == 0));
        assert_eq!(e.len(), 100);
    }

    #[test]
    fn a_short_buffer_is_padded_then_reprimed() {
        let mut a = PcmBuffer::default();
        a.push(&vec![7; 3 * CHUNK_SAMPLES + 10]);
        for _ in 0..3 {
            assert!(samples(&mix_chunk([&mut a])).iter().all(|&s| s == 7));
        }
        let out = samples(&mix_chunk([&mut a]));
        assert_eq!(out[..10], [7; 10]);
        assert!(out[10..].iter().all(|&s| s == 0));
        // Dry: needs 60 ms again.
        a.push(&vec![1; CHUNK_SAMPLES]);
        assert!(samples(&mix_chunk([&mut a])).iter().all(|&s| s == 0));
        a.push(&vec![1; 2 * CHUNK_SAMPLES]);
        assert!(samples(&mix_chunk([&mut a])).iter().all(|&s| s == 1));
    }

    #[test]
    fn drops_the_oldest_past_200_ms() {
        let mut a = PcmBuffer::default();
        a.push(&vec![1; MAX_SAMPLES]);
        a.push(&vec![2; CHUNK_SAMPLES]);
        assert_eq!(a.len(), MAX_SAMPLES);
        assert_eq!(a.dropped, CHUNK_SAMPLES as u64);
        a.push_le_bytes(&[3, 0, 4]);
        assert!(a.len() <= MAX_SAMPLES && a.len() % 2 == 1);
        assert_eq!(a.samples.back(), Some(&3));
    }
}
