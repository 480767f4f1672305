//! RTP → whole frames: reordering, reassembly, keyframe detection and unwrapped timestamps.
//!
//! [`FrameAssembler`] takes the packets of one track as they come off the tap (possibly out of
//! order, duplicated by NACK retransmissions, with losses and padding) and returns whole frames:
//! VP8/VP9 frames as IVF/WebM store them, H264 access units in Annex-B form, Opus packets.
//! It keeps a small reorder window (at most [`REORDER_PACKETS`] packets or [`REORDER_WAIT`]),
//! drops a frame that lost a packet and then waits for the next keyframe. The payload parsers
//! are written here (not rtc's depacketizers) so that no malformed payload can panic.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rtc::rtp;

use super::tap::RecordedCodec;

/// Packets held while waiting for a missing one before the gap is declared a loss.
const REORDER_PACKETS: usize = 32;
/// How long a packet waits for a missing earlier one before the gap is declared a loss.
const REORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// A sequence jump larger than this restarts the stream (publisher restart, SSRC reuse).
const MAX_SEQ_JUMP: i64 = 3000;
/// Largest frame assembled; bigger ones are dropped as broken.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Annex-B start code.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One whole frame rebuilt from RTP.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// VP8/VP9: the frame as stored in IVF/WebM; H264: an Annex-B access unit (start codes); Opus: the packet.
    pub(crate) data: Bytes,
    /// A keyframe (always true for audio).
    pub(crate) keyframe: bool,
    /// The extended RTP timestamp (wrap-around removed).
    pub(crate) rtp_timestamp: u64,
    /// Microseconds since this assembler's first frame, from the extended RTP timestamp and the clock rate.
    pub(crate) media_time_us: i64,
    /// Wall clock when the frame completed.
    pub(crate) arrived: SystemTime,
}

/// A packet waiting in the reorder window.
struct Pending {
    packet: rtp::Packet,
    since: Instant,
}

/// The frame being assembled.
struct Partial {
    /// Extended RTP timestamp of the frame.
    timestamp: i64,
    /// Payload parts, codec framing removed (H264: Annex-B NAL units).
    data: BytesMut,
    /// A packet of it was lost or unusable, or its start was never seen.
    broken: bool,
    /// H264: an FU-A fragmented NAL unit is open.
    fu_open: bool,
}

/// Rebuilds whole frames from the RTP packets of one track.
pub(crate) struct FrameAssembler {
    codec: RecordedCodec,
    clock_rate: u32,
    /// Highest extended sequence number seen (the unwrapping reference).
    highest_seq: Option<i64>,
    /// The next extended sequence number to process.
    next_seq: Option<i64>,
    /// The reorder window, by extended sequence number.
    pending: BTreeMap<i64, Pending>,
    /// Last processed extended RTP timestamp (the unwrapping reference).
    last_ts: Option<i64>,
    /// Extended RTP timestamp of the first emitted frame.
    first_ts: Option<i64>,
    current: Option<Partial>,
    /// Video: frames are dropped until a keyframe completes.
    waiting_keyframe: bool,
}

impl FrameAssembler {
    /// An assembler for a track of `codec` at `clock_rate` Hz.
    pub(crate) fn new(codec: RecordedCodec, clock_rate: u32) -> Self {
        Self {
            codec,
            clock_rate: clock_rate.max(1),
            highest_seq: None,
            next_seq: None,
            pending: BTreeMap::new(),
            last_ts: None,
            first_ts: None,
            current: None,
            waiting_keyframe: codec.is_video(),
        }
    }

    /// Feeds one packet; returns the frames it completed, in order.
    pub(crate) fn push(&mut self, packet: rtp::Packet) -> Vec<Frame> {
        let mut out = Vec::new();
        let seq = packet.header.sequence_number;
        let ext = match self.highest_seq {
            None => i64::from(seq) + (1 << 32),
            Some(highest) => highest + i64::from(seq.wrapping_sub(highest as u16) as i16),
        };
        let Some(next) = self.next_seq else {
            self.highest_seq = Some(ext);
            self.next_seq = Some(ext);
            self.pending.insert(ext, Pending { packet, since: Instant::now() });
            self.drain(&mut out);
            return out;
        };
        if ext - next > MAX_SEQ_JUMP || next - ext > MAX_SEQ_JUMP {
            // The sender restarted its sequence: start over from this packet.
            tracing::debug!(seq, "RTP sequence jump, resynchronising");
            self.drop_current();
            self.pending.clear();
            self.highest_seq = Some(ext);
            self.next_seq = Some(ext);
            self.pending.insert(ext, Pending { packet, since: Instant::now() });
            self.loss();
            self.drain(&mut out);
            return out;
        }
        if ext < next || self.pending.contains_key(&ext) {
            // Too late or a duplicate (NACK retransmission of something we have).
            return out;
        }
        if self.highest_seq.is_none_or(|h| ext > h) {
            self.highest_seq = Some(ext);
        }
        self.pending.insert(ext, Pending { packet, since: Instant::now() });
        self.drain(&mut out);
        out
    }

    /// True at start and after a loss until a keyframe completes (video); the caller asks the publisher for one.
    pub(crate) fn needs_keyframe(&self) -> bool {
        self.codec.is_video() && self.waiting_keyframe
    }

    /// Forget partial state (after the receiver lagged); waits for a keyframe again.
    pub(crate) fn reset(&mut self) {
        self.pending.clear();
        self.current = None;
        self.highest_seq = None;
        self.next_seq = None;
        self.waiting_keyframe = self.codec.is_video();
    }

    /// Processes what the reorder window allows: in-order packets, and past a gap once the
    /// window is full or its oldest packet waited too long.
    fn drain(&mut self, out: &mut Vec<Frame>) {
        loop {
            let Some(next) = self.next_seq else { return };
            if let Some(p) = self.pending.remove(&next) {
                self.next_seq = Some(next + 1);
                self.process(p.packet, out);
                continue;
            }
            let Some((&first, oldest)) = self.pending.first_key_value() else { return };
            let waited = self.pending.values().map(|p| p.since).min().unwrap_or(oldest.since);
            if self.pending.len() >= REORDER_PACKETS || waited.elapsed() >= REORDER_WAIT {
                tracing::trace!(lost = first - next, "RTP packets lost");
                self.next_seq = Some(first);
                self.loss();
            } else {
                return;
            }
        }
    }

    /// A packet is missing for good: the current frame is broken, video waits for a keyframe.
    fn loss(&mut self) {
        if let Some(current) = &mut self.current {
            current.broken = true;
        } else if self.codec.is_video() {
            // The lost packet may have been a whole frame the next ones reference.
            self.waiting_keyframe = true;
        }
    }

    /// Drops the frame being assembled (video then waits for a keyframe).
    fn drop_current(&mut self) {
        if self.current.take().is_some() && self.codec.is_video() {
            self.waiting_keyframe = true;
        }
    }

    /// Processes the next packet in sequence order.
    fn process(&mut self, packet: rtp::Packet, out: &mut Vec<Frame>) {
        if packet.payload.is_empty() {
            return; // padding only
        }
        let ts = match self.last_ts {
            None => i64::from(packet.header.timestamp),
            Some(last) => last + i64::from(packet.header.timestamp.wrapping_sub(last as u32) as i32),
        };
        self.last_ts = Some(ts);
        if self.current.as_ref().is_some_and(|c| c.timestamp != ts) {
            // The marker of the previous frame was lost or never set: the timestamp ends it.
            self.finish(out);
        }
        let parsed = parse_payload(self.codec, &packet.payload);
        let current = self.current.get_or_insert_with(|| Partial {
            timestamp: ts,
            data: BytesMut::new(),
            broken: !parsed.as_ref().is_some_and(|p| p.frame_start),
            fu_open: false,
        });
        match parsed {
            None => current.broken = true,
            Some(parsed) if !current.broken => {
                if self.codec == RecordedCodec::H264 {
                    append_h264(current, &packet.payload);
                } else {
                    current.data.extend_from_slice(&packet.payload[parsed.offset..]);
                }
                if current.data.len() > MAX_FRAME_BYTES {
                    current.broken = true;
                    current.data = BytesMut::new();
                }
            }
            Some(_) => {}
        }
        if packet.header.marker || !self.codec.is_video() {
            self.finish(out);
        }
    }

    /// Ends the current frame: emits it when whole (and, for video, once a keyframe came).
    fn finish(&mut self, out: &mut Vec<Frame>) {
        let Some(current) = self.current.take() else { return };
        if current.broken || current.data.is_empty() || current.fu_open {
            if self.codec.is_video() {
                self.waiting_keyframe = true;
            }
            return;
        }
        let data = current.data.freeze();
        let keyframe = match self.codec {
            RecordedCodec::Opus => true,
            codec => is_keyframe(codec, &data),
        };
        if self.codec.is_video() {
            if self.waiting_keyframe && !keyframe {
                return;
            }
            self.waiting_keyframe = false;
        }
        let first = *self.first_ts.get_or_insert(current.timestamp);
        let media_time_us = ((i128::from(current.timestamp - first) * 1_000_000) / i128::from(self.clock_rate)) as i64;
        out.push(Frame {
            data,
            keyframe,
            rtp_timestamp: current.timestamp.max(0) as u64,
            media_time_us,
            arrived: SystemTime::now(),
        });
    }
}

/// What a packet's payload header says.
struct Parsed {
    /// The packet starts a frame.
    frame_start: bool,
    /// Where the codec data starts (after the payload descriptor).
    offset: usize,
}

/// Parses the payload descriptor; `None` for a malformed payload.
fn parse_payload(codec: RecordedCodec, payload: &[u8]) -> Option<Parsed> {
    match codec {
        RecordedCodec::Opus => Some(Parsed { frame_start: true, offset: 0 }),
        RecordedCodec::Vp8 => parse_vp8(payload),
        RecordedCodec::Vp9 => parse_vp9(payload),
        RecordedCodec::H264 => parse_h264(payload),
    }
}

/// RFC 7741 payload descriptor.
fn parse_vp8(p: &[u8]) -> Option<Parsed> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let pid = *p.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some(Parsed { frame_start: b0 & 0x10 != 0 && b0 & 0x07 == 0, offset: i })
}

/// VP9 RTP payload descriptor (draft-ietf-payload-vp9).
fn parse_vp9(p: &[u8]) -> Option<Parsed> {
    let b0 = *p.first()?;
    let (pic_id, inter, layers, flexible, begin, ss) =
        (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10 != 0, b0 & 0x08 != 0, b0 & 0x02 != 0);
    let mut i = 1;
    if pic_id {
        let b = *p.get(i)?;
        i += if b & 0x80 != 0 { 2 } else { 1 };
    }
    if layers {
        i += if flexible { 1 } else { 2 };
    }
    if flexible && inter {
        for _ in 0..3 {
            let b = *p.get(i)?;
            i += 1;
            if b & 0x01 == 0 {
                break;
            }
        }
    }
    if ss {
        let b = *p.get(i)?;
        i += 1;
        let spatial = usize::from(b >> 5) + 1;
        if b & 0x10 != 0 {
            i += 4 * spatial;
        }
        if b & 0x08 != 0 {
            let groups = *p.get(i)?;
            i += 1;
            for _ in 0..groups {
                let g = *p.get(i)?;
                i += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    if i >= p.len() {
        return None;
    }
    Some(Parsed { frame_start: begin, offset: i })
}

/// RFC 6184: single NAL unit, STAP-A, FU-A. The data is appended by [`append_h264`].
fn parse_h264(p: &[u8]) -> Option<Parsed> {
    let nal_type = *p.first()? & 0x1F;
    match nal_type {
        1..=23 => Some(Parsed { frame_start: true, offset: 0 }),
        24 => {
            // Validate the aggregation now so append_h264 cannot fail.
            let mut i = 1;
            while i < p.len() {
                let len = usize::from(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
                i += 2;
                if len == 0 || i + len > p.len() {
                    return None;
                }
                i += len;
            }
            Some(Parsed { frame_start: true, offset: 0 })
        }
        28 => {
            let fu = *p.get(1)?;
            if p.len() < 3 {
                return None;
            }
            Some(Parsed { frame_start: fu & 0x80 != 0, offset: 2 })
        }
        _ => None,
    }
}

/// Whether an RTP payload starts a keyframe: VP8 and VP9 from the payload descriptor and the
/// frame header, H264 from an IDR slice or an SPS (which a keyframe's access unit starts with),
/// alone, in a STAP-A or at the start of a FU-A. Opus: never. Looks at a few bytes only, for the
/// fan-out's reading task.
pub(crate) fn starts_keyframe(codec: RecordedCodec, payload: &[u8]) -> bool {
    let is_key_nal = |nal: u8| matches!(nal & 0x1F, 5 | 7);
    match codec {
        RecordedCodec::Opus => false,
        RecordedCodec::Vp8 => parse_vp8(payload)
            .filter(|p| p.frame_start)
            .and_then(|p| payload.get(p.offset))
            .is_some_and(|tag| tag & 0x01 == 0),
        // The P bit: a frame not predicted from an earlier one.
        RecordedCodec::Vp9 => parse_vp9(payload).is_some_and(|p| p.frame_start) && payload[0] & 0x40 == 0,
        RecordedCodec::H264 => match payload.first().map(|b| b & 0x1F) {
            Some(1..=23) => is_key_nal(payload[0]),
            Some(24) => {
                let mut i = 1;
                while let Some(len) = payload.get(i..i + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) {
                    match payload.get(i + 2) {
                        Some(&nal) if len > 0 && is_key_nal(nal) => return true,
                        Some(_) => i += 2 + len,
                        None => return false,
                    }
                }
                false
            }
            Some(28) => payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && is_key_nal(fu)),
            _ => false,
        },
    }
}

/// Appends the NAL units of a validated H264 payload to `frame` in Annex-B form.
fn append_h264(frame: &mut Partial, p: &[u8]) {
    let Some(&b0) = p.first() else { return };
    match b0 & 0x1F {
        1..=23 => {
            if frame.fu_open {
                frame.broken = true;
                return;
            }
            frame.data.extend_from_slice(&START_CODE);
            frame.data.extend_from_slice(p);
        }
        24 => {
            if frame.fu_open {
                frame.broken = true;
                return;
            }
            let mut i = 1;
            while i + 2 <= p.len() {
                let len = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                i += 2;
                let Some(nal) = p.get(i..i + len) else { return };
                frame.data.extend_from_slice(&START_CODE);
                frame.data.extend_from_slice(nal);
                i += len;
            }
        }
        28 => {
            let Some(&fu) = p.get(1) else { return };
            let body = p.get(2..).unwrap_or_default();
            if fu & 0x80 != 0 {
                if frame.fu_open {
                    frame.broken = true;
                    return;
                }
                frame.data.extend_from_slice(&START_CODE);
                frame.data.extend_from_slice(&[(b0 & 0xE0) | (fu & 0x1F)]);
                frame.fu_open = true;
            } else if !frame.fu_open {
                frame.broken = true;
                return;
            }
            frame.data.extend_from_slice(body);
            if fu & 0x40 != 0 {
                frame.fu_open = false;
            }
        }
        _ => frame.broken = true,
    }
}

/// Whether a whole frame is a keyframe.
fn is_keyframe(codec: RecordedCodec, data: &[u8]) -> bool {
    match codec {
        RecordedCodec::Opus => true,
        RecordedCodec::Vp8 => data.len() >= 10 && data[0] & 0x01 == 0 && data[3..6] == [0x9D, 0x01, 0x2A],
        RecordedCodec::Vp9 => vp9_header(data).is_some_and(|h| h.keyframe),
        RecordedCodec::H264 => nal_units(data).any(|nal| nal.first().is_some_and(|b| b & 0x1F == 5)),
    }
}

/// Width and height from a keyframe (VP8, VP9, and H264 from its SPS).
pub(crate) fn video_dimensions(codec: RecordedCodec, keyframe: &[u8]) -> Option<(u16, u16)> {
    match codec {
        RecordedCodec::Opus => None,
        RecordedCodec::Vp8 => {
            if !is_keyframe(codec, keyframe) {
                return None;
            }
            let w = u16::from_le_bytes([keyframe[6], keyframe[7]]) & 0x3FFF;
            let h = u16::from_le_bytes([keyframe[8], keyframe[9]]) & 0x3FFF;
            (w > 0 && h > 0).then_some((w, h))
        }
        RecordedCodec::Vp9 => vp9_header(keyframe).and_then(|h| h.size),
        RecordedCodec::H264 => {
            nal_units(keyframe).find(|nal| nal.first().is_some_and(|b| b & 0x1F == 7)).and_then(h264_sps_dimensions)
        }
    }
}

/// The NAL units of an Annex-B byte stream (without start codes).
pub(crate) fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&(code, _)| if code > 0 && data[code - 1] == 0 { code - 1 } else { code })
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).filter_map(move |((_, start), end)| data.get(start..end)).filter(|n| !n.is_empty())
}

/// Reads bits MSB first; `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Exp-Golomb unsigned.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)).min(u64::from(u32::MAX)) as u32)
    }

    /// Exp-Golomb signed.
    fn se(&mut self) -> Option<i32> {
        let v = self.ue()?;
        Some(if v % 2 == 1 { v.div_ceil(2) as i32 } else { -((v / 2) as i32) })
    }
}

/// The bits of a VP9 uncompressed header a recorder needs.
struct Vp9Header {
    keyframe: bool,
    size: Option<(u16, u16)>,
}

/// Parses the start of a VP9 uncompressed header (the first frame of a superframe).
fn vp9_header(data: &[u8]) -> Option<Vp9Header> {
    let mut r = BitReader::new(data);
    if r.bits(2)? != 2 {
        return None;
    }
    let profile = r.bit()? | (r.bit()? << 1);
    if profile == 3 {
        r.bit()?;
    }
    if r.bit()? == 1 {
        return Some(Vp9Header { keyframe: false, size: None }); // show_existing_frame
    }
    let frame_type = r.bit()?;
    if frame_type != 0 {
        return Some(Vp9Header { keyframe: false, size: None });
    }
    r.bits(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        r.bit()?;
    }
    let color_space = r.bits(3)?;
    if color_space != 7 {
        r.bit()?;
        if profile == 1 || profile == 3 {
            r.bits(3)?;
        }
    } else if profile == 1 || profile == 3 {
        r.bit()?;
    }
    let w = r.bits(16)? + 1;
    let h = r.bits(16)? + 1;
    Some(Vp9Header { keyframe: true, size: u16::try_from(w).ok().zip(u16::try_from(h).ok()) })
}

/// Removes emulation prevention bytes (00 00 03 → 00 00).
fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Width and height from an H264 SPS NAL unit (with its header byte).
fn h264_sps_dimensions(nal: &[u8]) -> Option<(u16, u16)> {
    let rbsp = unescape_rbsp(nal.get(1..)?);
    let mut r = BitReader::new(&rbsp);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            for i in 0..if chroma_format == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(256) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        crop_l = r.ue()?;
        crop_r = r.ue()?;
        crop_t = r.ue()?;
        crop_b = r.ue()?;
    }
    let field = 2 - frame_mbs_only;
    let (unit_x, unit_y) = match chroma_format {
        1 => (2, 2 * field),
        2 => (2, field),
        _ => (1, field),
    };
    let w = i64::from(width_mbs) * 16 - i64::from(unit_x) * (i64::from(crop_l) + i64::from(crop_r));
    let h =
        i64::from(field) * i64::from(height_units) * 16 - i64::from(unit_y) * (i64::from(crop_t) + i64::from(crop_b));
    Some((u16::try_from(w).ok().filter(|w| *w > 0)?, u16::try_from(h).ok().filter(|h| *h > 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::Header;

    /// A fake VP8 frame: keyframes carry the start code and 320x240.
    fn vp8_frame(key: bool, len: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; len.max(10)];
        if key {
            f[0] = 0x00;
            f[3..6].copy_from_slice(&[0x9D, 0x01, 0x2A]);
            f[6..8].copy_from_slice(&320u16.to_le_bytes());
            f[8..10].copy_from_slice(&240u16.to_le_bytes());
        } else {
            f[0] = 0x01;
        }
        f
    }

    /// Packetizes `frame` into VP8 RTP packets of at most `chunk` payload bytes.
    fn vp8_packets(frame: &[u8], seq: &mut u16, ts: u32, chunk: usize) -> Vec<rtp::Packet> {
        let parts: Vec<&[u8]> = frame.chunks(chunk).collect();
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut payload = vec![if i == 0 { 0x10 } else { 0x00 }];
                payload.extend_from_slice(part);
                let p = rtp::Packet {
                    header: Header {
                        version: 2,
                        marker: i == n - 1,
                        sequence_number: *seq,
                        timestamp: ts,
                        payload_type: 96,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                *seq = seq.wrapping_add(1);
                p
            })
            .collect()
    }

    /// Frames 0..n, keyframe first, each 3000 bytes in 3 packets, 3000 ticks apart.
    fn stream(n: usize, seq0: u16, ts0: u32) -> (Vec<Vec<u8>>, Vec<rtp::Packet>) {
        let mut seq = seq0;
        let mut frames = Vec::new();
        let mut packets = Vec::new();
        for i in 0..n {
            let f = vp8_frame(i == 0, 3000, i as u8 + 1);
            packets.extend(vp8_packets(&f, &mut seq, ts0.wrapping_add(3000 * i as u32), 1000));
            frames.push(f);
        }
        (frames, packets)
    }

    fn feed(a: &mut FrameAssembler, packets: Vec<rtp::Packet>) -> Vec<Frame> {
        packets.into_iter().flat_map(|p| a.push(p)).collect()
    }

    #[test]
    fn in_order_frames_are_rebuilt() {
        let (frames, packets) = stream(5, 100, 1000);
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        assert!(a.needs_keyframe());
        let out = feed(&mut a, packets);
        assert_eq!(out.len(), 5);
        for (i, f) in out.iter().enumerate() {
            assert_eq!(&f.data[..], &frames[i][..]);
            assert_eq!(f.keyframe, i == 0);
            assert_eq!(f.media_time_us, i as i64 * 3000 * 1_000_000 / 90000);
        }
        assert!(!a.needs_keyframe());
        assert_eq!(video_dimensions(RecordedCodec::Vp8, &out[0].data), Some((320, 240)));
        assert_eq!(video_dimensions(RecordedCodec::Vp8, &out[1].data), None);
    }

    #[test]
    fn reordered_and_duplicated_packets_are_sorted_out() {
        let (frames, mut packets) = stream(4, 500, 0);
        packets.swap(1, 2);
        packets.swap(4, 6);
        let dup = packets[3].clone();
        packets.insert(8, dup);
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let out = feed(&mut a, packets);
        assert_eq!(out.len(), 4);
        for (f, want) in out.iter().zip(&frames) {
            assert_eq!(&f.data[..], &want[..]);
        }
    }

    #[test]
    fn a_lost_packet_drops_frames_until_a_keyframe() {
        let mut seq = 10;
        let mut packets = Vec::new();
        for i in 0..6u32 {
            let f = vp8_frame(i == 0 || i == 4, 3000, 7);
            packets.extend(vp8_packets(&f, &mut seq, i * 3000, 1000));
        }
        // Lose the middle packet of frame 2, well past the reorder window.
        packets.remove(7);
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let mut out = Vec::new();
        for (i, p) in packets.into_iter().enumerate() {
            out.extend(a.push(p));
            if i == 7 {
                // More than the reorder wait passes before the next packets come.
                std::thread::sleep(REORDER_WAIT + std::time::Duration::from_millis(20));
            }
            if i == 9 {
                assert!(a.needs_keyframe(), "waits for a keyframe after the loss");
            }
        }
        let times: Vec<u64> = out.iter().map(|f| f.rtp_timestamp).collect();
        assert_eq!(times, vec![0, 3000, 12000, 15000]);
        assert!(out[2].keyframe);
        assert!(!a.needs_keyframe());
    }

    #[test]
    fn the_reorder_window_overflows_into_a_loss() {
        let (_, mut packets) = stream(20, 0, 0);
        packets.remove(4); // frame 1
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let out = feed(&mut a, packets);
        // Only the keyframe: everything after the loss waits for another keyframe.
        assert_eq!(out.len(), 1);
        assert!(a.needs_keyframe());
    }

    #[test]
    fn timestamps_and_sequence_numbers_wrap_around() {
        let ts0 = u32::MAX - 4000;
        let (frames, packets) = stream(4, u16::MAX - 4, ts0);
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let out = feed(&mut a, packets);
        assert_eq!(out.len(), frames.len());
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f.rtp_timestamp, u64::from(ts0) + 3000 * i as u64);
            assert_eq!(f.media_time_us, i as i64 * 3000 * 1_000_000 / 90000);
        }
    }

    #[test]
    fn padding_is_skipped() {
        let (frames, packets) = stream(3, 0, 0);
        let mut with_padding = Vec::new();
        let mut seq = 0u16;
        for mut p in packets {
            p.header.sequence_number = seq;
            seq += 1;
            let last_marker = p.header.marker;
            let ts = p.header.timestamp;
            with_padding.push(p);
            if last_marker {
                with_padding.push(rtp::Packet {
                    header: Header { sequence_number: seq, timestamp: ts, padding: true, ..Default::default() },
                    payload: Bytes::new(),
                });
                seq += 1;
            }
        }
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let out = feed(&mut a, with_padding);
        assert_eq!(out.len(), frames.len());
    }

    #[test]
    fn a_missing_marker_is_ended_by_the_next_timestamp() {
        let (frames, mut packets) = stream(3, 0, 0);
        packets[2].header.marker = false;
        let mut a = FrameAssembler::new(RecordedCodec::Vp8, 90000);
        let out = feed(&mut a, packets);
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0].data[..], &frames[0][..]);
    }

    #[test]
    fn opus_packets_are_frames() {
        let mut a = FrameAssembler::new(RecordedCodec::Opus, 48000);
        assert!(!a.needs_keyframe());
        let mut out = Vec::new();
        for i in 0..5u16 {
            out.extend(a.push(rtp::Packet {
                header: Header {
                    sequence_number: 65533u16.wrapping_add(i),
                    timestamp: 960 * u32::from(i),
                    ..Default::default()
                },
                payload: Bytes::from(vec![0xFC, i as u8]),
            }));
        }
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|f| f.keyframe));
        assert_eq!(out[4].media_time_us, 80_000);
    }

    #[test]
    fn keyframe_starts_are_told_from_the_first_packet() {
        let mut seq = 0;
        let key = vp8_packets(&vp8_frame(true, 3000, 7), &mut seq, 0, 1200);
        let delta = vp8_packets(&vp8_frame(false, 3000, 7), &mut seq, 3000, 1200);
        assert!(starts_keyframe(RecordedCodec::Vp8, &key[0].payload));
        assert!(!starts_keyframe(RecordedCodec::Vp8, &key[1].payload), "not the start of the frame");
        assert!(!starts_keyframe(RecordedCodec::Vp8, &delta[0].payload));
        // VP8 with an extended descriptor (X, I with a 15-bit picture id).
        assert!(starts_keyframe(RecordedCodec::Vp8, &[0x90, 0x80, 0x81, 0x23, 0x00, 0, 0, 0x9D, 0x01, 0x2A]));
        assert!(!starts_keyframe(RecordedCodec::Vp8, &[0x90, 0x80, 0x81, 0x23, 0x01, 0, 0]));

        // VP9: B set, P clear / set.
        assert!(starts_keyframe(RecordedCodec::Vp9, &[0x08, 0x82, 0x49]));
        assert!(!starts_keyframe(RecordedCodec::Vp9, &[0x48, 0x82, 0x49]));
        assert!(!starts_keyframe(RecordedCodec::Vp9, &[0x00, 0x82, 0x49]), "not the start of the frame");

        // H264: SPS, IDR, non-IDR slice; STAP-A with SPS+PPS; FU-A start / middle of an IDR.
        assert!(starts_keyframe(RecordedCodec::H264, &[0x67, 0x42, 0x00]));
        assert!(starts_keyframe(RecordedCodec::H264, &[0x65, 0x88, 0x80]));
        assert!(!starts_keyframe(RecordedCodec::H264, &[0x41, 0x9a, 0x00]));
        assert!(starts_keyframe(RecordedCodec::H264, &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        assert!(!starts_keyframe(RecordedCodec::H264, &[0x18, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9a]));
        assert!(starts_keyframe(RecordedCodec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(RecordedCodec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(RecordedCodec::Opus, &[0x78, 0x00]));
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut state = 0x1234_5678u32;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for codec in [RecordedCodec::Vp8, RecordedCodec::Vp9, RecordedCodec::H264, RecordedCodec::Opus] {
            let mut a = FrameAssembler::new(codec, 90000);
            for _ in 0..3000 {
                let len = (rnd() % 40) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                let p = rtp::Packet {
                    header: Header {
                        sequence_number: rnd() as u16 % 64,
                        timestamp: rnd() % 5,
                        marker: rnd() % 2 == 0,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload.clone()),
                };
                for f in a.push(p) {
                    let _ = video_dimensions(codec, &f.data);
                }
                let _ = video_dimensions(codec, &payload);
                let _ = starts_keyframe(codec, &payload);
                if rnd() % 500 == 0 {
                    a.reset();
                }
            }
        }
    }

    #[test]
    fn h264_access_units_are_rebuilt() {
        // SPS (High profile, 320x240, from libx264) and PPS; IDR split into FU-A.
        let sps = [
            0x67, 0x64, 0x00, 0x0C, 0xAC, 0xD9, 0x41, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
            0x03, 0x01, 0xE0, 0xF1, 0x42, 0x99, 0x60,
        ];
        let pps = [0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0];
        let idr: Vec<u8> = std::iter::once(0x65).chain((0..2000).map(|i| (i % 251) as u8 + 1)).collect();
        let mut stap = vec![0x78];
        for nal in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let mut payloads = vec![stap];
        let body = &idr[1..];
        for (i, chunk) in body.chunks(900).enumerate() {
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if (i + 1) * 900 >= body.len() { 0x40 } else { 0 };
            let mut p = vec![0x7C, start | end | 5];
            p.extend_from_slice(chunk);
            payloads.push(p);
        }
        let n = payloads.len();
        let mut a = FrameAssembler::new(RecordedCodec::H264, 90000);
        let mut out = Vec::new();
        for (i, payload) in payloads.into_iter().enumerate() {
            out.extend(a.push(rtp::Packet {
                header: Header { sequence_number: i as u16, timestamp: 9, marker: i == n - 1, ..Default::default() },
                payload: Bytes::from(payload),
            }));
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].keyframe);
        let nals: Vec<&[u8]> = nal_units(&out[0].data).collect();
        assert_eq!(nals, vec![&sps[..], &pps[..], &idr[..]]);
        assert_eq!(video_dimensions(RecordedCodec::H264, &out[0].data), Some((320, 240)));
    }

    #[test]
    fn vp9_keyframe_header_gives_the_size() {
        // frame_marker 10, profile 0 (0 0), show_existing 0, frame_type 0, show 1, error_res 0,
        // sync code, color_space 2 (3 bits) + range 0, width-1 = 639, height-1 = 479.
        let mut bits = String::from("10");
        bits += "00";
        bits += "0";
        bits += "0";
        bits += "10";
        bits += "010010011000001101000010";
        bits += "010";
        bits += "0";
        bits += &format!("{:016b}", 639);
        bits += &format!("{:016b}", 479);
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> =
            (0..bits.len() / 8).map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap()).collect();
        assert_eq!(video_dimensions(RecordedCodec::Vp9, &bytes), Some((640, 480)));
        assert!(is_keyframe(RecordedCodec::Vp9, &bytes));
    }
}
