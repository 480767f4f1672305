//! Synthetic media payloads: VP8 and Opus RTP payloads that are valid enough for an SFU (and for
//! depacketizers) and carry their send time, so that receivers can measure forwarding latency.
//! Pure functions, no I/O.
//!
//! Layout of a synthetic payload (after the codec's own header bytes):
//! `MAGIC` (4 bytes) · send time in microseconds since the UNIX epoch (8 bytes, big endian) ·
//! filler up to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

/// Marks a payload as synthetic (the send timestamp follows it).
pub(crate) const MAGIC: [u8; 4] = *b"OVrs";
/// The most a payload may hold (keeps packets under a 1200-byte MTU with headers).
pub(crate) const MAX_PAYLOAD: usize = 1150;
/// How far into a payload [`send_timestamp`] looks for [`MAGIC`].
const SEARCH_WINDOW: usize = 32;
/// Synthetic video dimensions announced in keyframe headers (and in `publishVideo`).
pub(crate) const WIDTH: u16 = 640;
/// See [`WIDTH`].
pub(crate) const HEIGHT: u16 = 480;
/// Opus packets per second of the synthetic audio (20 ms frames).
pub(crate) const AUDIO_PACKETS_PER_SECOND: u32 = 50;
/// Size of a synthetic Opus payload.
pub(crate) const AUDIO_PAYLOAD: usize = 60;

/// Microseconds since the UNIX epoch, now.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn stamp(out: &mut Vec<u8>, size: usize, send_micros: u64) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&send_micros.to_be_bytes());
    let size = size.clamp(out.len(), MAX_PAYLOAD.max(out.len()));
    // A recognisable, non-zero filler.
    let mut b = 0u8;
    while out.len() < size {
        out.push(b);
        b = b.wrapping_add(1);
    }
}

/// One VP8 RTP payload: the payload descriptor (start of partition 0 when `first_in_frame`) and,
/// for a frame's first packet, the VP8 frame header (a keyframe with its start code and
/// dimensions when `keyframe`, else an interframe tag), then the stamp and filler to `size`
/// bytes.
pub(crate) fn vp8_payload(first_in_frame: bool, keyframe: bool, size: usize, send_micros: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.min(MAX_PAYLOAD));
    // Payload descriptor: X=0 R=0 N=0 S=first PID=0.
    out.push(if first_in_frame { 0x10 } else { 0x00 });
    if first_in_frame {
        let header_len = if keyframe { 10 } else { 3 };
        let total = size.clamp(1 + header_len + 12, MAX_PAYLOAD);
        // Frame tag: bit 0 = P (0 = keyframe), bits 1-3 version 0, bit 4 show_frame, bits 5-23
        // the first partition's size (here: the rest of the payload).
        let first_part = (total - 1 - header_len) as u32;
        let tag = u32::from(!keyframe) | (1 << 4) | (first_part << 5);
        out.extend_from_slice(&tag.to_le_bytes()[..3]);
        if keyframe {
            out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
            out.extend_from_slice(&WIDTH.to_le_bytes());
            out.extend_from_slice(&HEIGHT.to_le_bytes());
        }
        stamp(&mut out, total, send_micros);
    } else {
        stamp(&mut out, size, send_micros);
    }
    out
}

/// True when a VP8 RTP payload starts a keyframe (S bit set, partition 0, P bit clear).
pub(crate) fn vp8_is_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        // Extended control bits: I (picture id, 1 or 2 bytes), L (TL0PICIDX), T/K (TID/KEYIDX).
        let Some(&x) = payload.get(at) else { return false };
        at += 1;
        if x & 0x80 != 0 {
            let Some(&pid) = payload.get(at) else { return false };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    payload.get(at).is_some_and(|tag| tag & 0x01 == 0)
}

/// One Opus RTP payload: a TOC byte (CELT fullband, 20 ms, one frame) then the stamp and filler.
pub(crate) fn opus_payload(size: usize, send_micros: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.min(MAX_PAYLOAD));
    out.push(0xF8);
    stamp(&mut out, size, send_micros);
    out
}

/// The send time a synthetic payload carries, if it is one.
pub(crate) fn send_timestamp(payload: &[u8]) -> Option<u64> {
    let window = &payload[..payload.len().min(SEARCH_WINDOW)];
    let at = window.windows(MAGIC.len()).position(|w| w == MAGIC)? + MAGIC.len();
    let bytes: [u8; 8] = payload.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
