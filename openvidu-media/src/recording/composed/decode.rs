//! Per-stream decoding: RTP → whole frames ([`FrameAssembler`]) → an FFmpeg decoder's stdin in
//! a container it can read from a pipe (IVF for VP8/VP9, Annex-B for H264, Ogg for Opus) →
//! yuv420p pictures into the stream's [`VideoSlot`], s16le PCM into its [`PcmBuffer`].
//!
//! A video decoder starts at the first keyframe, sized from it (the source's aspect ratio,
//! fitted into the canvas), and restarts when a keyframe announces another size. A decoder that
//! dies or stalls only blanks its cell: it is restarted at the next keyframe (at most every
//! [`RESTART_BACKOFF`]). Keyframes are requested when the stream is added and every second
//! while the decoder waits for one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::broadcast::error::RecvError;

use super::super::depacketize::{Frame, FrameAssembler, video_dimensions};
use super::super::tap::{RecordedCodec, TrackTap};
use super::AbortOnDrop;
use super::canvas::Picture;
use super::ffmpeg::{self, LogIds};
use super::layout::fit;
use super::mix::PcmBuffer;
use crate::endpoint::lock;
use crate::keyframe::KeyframeNeed;

/// The shortest time between two starts of one stream's decoder.
const RESTART_BACKOFF: Duration = Duration::from_secs(2);
/// A decoder that does not take a frame within this time is stuck and is killed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a keyframe is asked for while the decoder waits for one.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// The latest picture of a stream, with a counter of updates so the compositor redraws a cell
/// only when it changed.
#[derive(Debug, Default)]
pub(crate) struct VideoSlot {
    inner: Mutex<(u64, Option<Arc<Picture>>)>,
}

impl VideoSlot {
    /// Replaces the picture (`None`: black).
    pub(crate) fn set(&self, picture: Option<Arc<Picture>>) {
        let mut inner = lock(&self.inner);
        inner.0 += 1;
        inner.1 = picture;
    }

    /// The update counter and the picture.
    pub(crate) fn get(&self) -> (u64, Option<Arc<Picture>>) {
        let inner = lock(&self.inner);
        (inner.0, inner.1.clone())
    }
}

/// What a stream's decoders need.
#[derive(Clone, Debug)]
pub(crate) struct DecoderEnv {
    /// The `ffmpeg` program.
    pub(crate) ffmpeg: std::path::PathBuf,
    /// Log ids, with the stream.
    pub(crate) ids: LogIds,
    /// The canvas size: pictures are never decoded larger.
    pub(crate) max_w: u32,
    /// See `max_w`.
    pub(crate) max_h: u32,
}

/// A running decoder process.
struct Decoder {
    _child: Child,
    stdin: ChildStdin,
    _reader: AbortOnDrop,
    _stderr: AbortOnDrop,
    /// The coded size it was started for (video).
    dims: (u16, u16),
}

/// Spawns a decoder with `args`; `read` consumes its stdout.
fn start_decoder<F, Fut>(env: &DecoderEnv, args: &[String], process: &'static str, read: F) -> Option<Decoder>
where
    F: FnOnce(ChildStdout) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut child = match ffmpeg::spawn(&env.ffmpeg, args) {
        Ok(child) => child,
        Err(e) => {
            ffmpeg::log_line(&env.ids, process, true, &format!("cannot start the decoder: {e}"));
            return None;
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return None;
    };
    let (stderr_task, _) = ffmpeg::forward_stderr(stderr, env.ids.clone(), process, false);
    let reader = tokio::spawn(read(stdout));
    Some(Decoder {
        _child: child,
        stdin,
        _reader: AbortOnDrop(reader),
        _stderr: AbortOnDrop(stderr_task),
        dims: (0, 0),
    })
}

/// Writes `data` to the decoder, bounded in time. `false`: the decoder is dead or stuck.
async fn feed(decoder: &mut Decoder, data: &[u8]) -> bool {
    matches!(tokio::time::timeout(WRITE_TIMEOUT, decoder.stdin.write_all(data)).await, Ok(Ok(())))
}

/// The IVF file header (32 bytes) for a VP8/VP9 stream: time base 1/1000, frame count unknown.
pub(crate) fn ivf_header(codec: RecordedCodec, width: u16, height: u16) -> Bytes {
    let mut b = BytesMut::with_capacity(32);
    b.put_slice(b"DKIF");
    b.put_u16_le(0);
    b.put_u16_le(32);
    b.put_slice(if codec == RecordedCodec::Vp9 { b"VP90" } else { b"VP80" });
    b.put_u16_le(width);
    b.put_u16_le(height);
    b.put_u32_le(1000);
    b.put_u32_le(1);
    b.put_u32_le(0);
    b.put_u32_le(0);
    b.freeze()
}

/// One IVF frame: a 12-byte header (size, timestamp) and the frame.
pub(crate) fn ivf_frame(data: &[u8], pts: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + data.len());
    b.put_u32_le(data.len() as u32);
    b.put_u64_le(pts);
    b.put_slice(data);
    b.freeze()
}

/// Decodes a stream's video into `slot` until the tap closes (or the task is aborted).
pub(crate) async fn run_video(env: DecoderEnv, mut tap: TrackTap, slot: Arc<VideoSlot>) {
    let codec = tap.codec;
    let mut assembler = FrameAssembler::new(codec, tap.clock_rate);
    let mut decoder: Option<Decoder> = None;
    let mut last_start: Option<Instant> = None;
    let mut last_pts: Option<u64> = None;
    let mut waiting = true;
    tap.request_keyframe(KeyframeNeed::First);
    let mut retry = tokio::time::interval_at(tokio::time::Instant::now() + KEYFRAME_RETRY, KEYFRAME_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frames = tokio::select! {
            received = tap.packets.recv() => match received {
                Ok(packet) => assembler.push(packet),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(session = %env.ids.session, recording_id = %env.ids.recording,
                        stream = ?env.ids.stream, lost = n, "composed recorder lagged behind the video");
                    assembler.reset();
                    waiting = true;
                    tap.request_keyframe(KeyframeNeed::Recovery);
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
            _ = retry.tick() => {
                if waiting || decoder.is_none() || assembler.needs_keyframe() {
                    tap.request_keyframe(if last_pts.is_none() { KeyframeNeed::First } else { KeyframeNeed::Recovery });
                }
                continue;
            }
        };
        for frame in frames {
            if waiting && !frame.keyframe {
                continue;
            }
            if frame.keyframe {
                let Some(dims) = video_dimensions(codec, &frame.data) else {
                    // Not parseable: keep the current decoder if any, else wait for another.
                    if decoder.is_none() {
                        continue;
                    }
                    waiting = false;
                    if !feed_video(&mut decoder, codec, &frame, &mut last_pts).await {
                        decoder_died(&env, &slot, &mut decoder, &mut waiting, &tap);
                    }
                    continue;
                };
                let restart = decoder.as_ref().is_none_or(|d| d.dims != dims);
                if restart {
                    if last_start.is_some_and(|t| decoder.is_none() && t.elapsed() < RESTART_BACKOFF) {
                        continue;
                    }
                    // Drop (kill) the old decoder before starting its successor.
                    drop(decoder.take());
                    last_start = Some(Instant::now());
                    last_pts = None;
                    decoder = start_video_decoder(&env, codec, dims, slot.clone());
                    if decoder.is_none() {
                        continue;
                    }
                    tracing::debug!(session = %env.ids.session, recording_id = %env.ids.recording,
                        stream = ?env.ids.stream, width = dims.0, height = dims.1, "video decoder started");
                }
                waiting = false;
            }
            if !feed_video(&mut decoder, codec, &frame, &mut last_pts).await {
                decoder_died(&env, &slot, &mut decoder, &mut waiting, &tap);
            }
        }
    }
}

/// Forgets a dead decoder: the cell goes black until the next keyframe restarts it.
fn decoder_died(env: &DecoderEnv, slot: &VideoSlot, decoder: &mut Option<Decoder>, waiting: &mut bool, tap: &TrackTap) {
    if decoder.take().is_some() {
        tracing::warn!(session = %env.ids.session, recording_id = %env.ids.recording, stream = ?env.ids.stream,
            "video decoder died or stalled; its cell is black until the next keyframe");
    }
    slot.set(None);
    *waiting = true;
    tap.request_keyframe(KeyframeNeed::Recovery);
}

/// The size a decoder outputs for a `src_w`×`src_h` source: the source's (rounded to even),
/// or fitted into the canvas when larger. The compositor scales it into its cell: decoding at
/// the source size keeps the pipe and the decoder's scaler cheap.
pub(crate) fn decoded_size(src_w: u32, src_h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if src_w <= max_w && src_h <= max_h {
        ((src_w & !1).max(2), (src_h & !1).max(2))
    } else {
        fit(src_w, src_h, max_w, max_h)
    }
}

/// Starts a video decoder for `dims` whose pictures go to `slot`.
fn start_video_decoder(
    env: &DecoderEnv,
    codec: RecordedCodec,
    dims: (u16, u16),
    slot: Arc<VideoSlot>,
) -> Option<Decoder> {
    let (w, h) = decoded_size(u32::from(dims.0), u32::from(dims.1), env.max_w, env.max_h);
    let args = ffmpeg::video_decoder_args(codec, w, h);
    let mut decoder = start_decoder(env, &args, "video decoder", move |stdout| read_pictures(stdout, w, h, slot))?;
    decoder.dims = dims;
    Some(decoder)
}

/// Writes one frame (with its IVF framing for VP8/VP9; the file header before the first).
async fn feed_video(
    decoder: &mut Option<Decoder>,
    codec: RecordedCodec,
    frame: &Frame,
    last_pts: &mut Option<u64>,
) -> bool {
    let Some(d) = decoder.as_mut() else {
        return true;
    };
    if codec == RecordedCodec::H264 {
        return feed(d, &frame.data).await;
    }
    let ms = u64::try_from(frame.media_time_us / 1000).unwrap_or(0);
    let pts = match *last_pts {
        None => {
            if !feed(d, &ivf_header(codec, d.dims.0, d.dims.1)).await {
                return false;
            }
            ms
        }
        Some(last) => ms.max(last.saturating_add(1)),
    };
    *last_pts = Some(pts);
    feed(d, &ivf_frame(&frame.data, pts)).await
}

/// Reads `w`×`h` pictures from a decoder into `slot`; blanks it when the decoder ends.
async fn read_pictures(mut stdout: ChildStdout, w: u32, h: u32, slot: Arc<VideoSlot>) {
    let len = Picture::byte_len(w, h);
    loop {
        let mut data = vec![0u8; len];
        if stdout.read_exact(&mut data).await.is_err() {
            slot.set(None);
            return;
        }
        slot.set(Some(Arc::new(Picture { w, h, data })));
    }
}

/// Ogg pages of one Opus stream (RFC 7845), one packet per page.
pub(crate) struct OggOpus {
    serial: u32,
    sequence: u32,
    first_timestamp: Option<u64>,
}

/// The CRC of Ogg pages: polynomial 0x04c11db7, not reflected, initial value 0.
const OGG_CRC: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04c1_1db7 } else { r << 1 };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

impl OggOpus {
    /// A stream with a random serial number.
    pub(crate) fn new() -> Self {
        Self { serial: rand::random(), sequence: 0, first_timestamp: None }
    }

    /// One page holding `packet`, or `None` when the packet cannot fit one page.
    fn page(&mut self, header_type: u8, granule: u64, packet: &[u8]) -> Option<Bytes> {
        let segments = packet.len() / 255 + 1;
        if segments > 255 {
            return None;
        }
        let mut page = BytesMut::with_capacity(27 + segments + packet.len());
        page.put_slice(b"OggS");
        page.put_u8(0);
        page.put_u8(header_type);
        page.put_u64_le(granule);
        page.put_u32_le(self.serial);
        page.put_u32_le(self.sequence);
        page.put_u32_le(0);
        page.put_u8(segments as u8);
        for _ in 0..segments - 1 {
            page.put_u8(255);
        }
        page.put_u8((packet.len() % 255) as u8);
        page.put_slice(packet);
        let mut crc = 0u32;
        for &byte in page.iter() {
            crc = (crc << 8) ^ OGG_CRC[((crc >> 24) as u8 ^ byte) as usize];
        }
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.sequence = self.sequence.wrapping_add(1);
        Some(page.freeze())
    }

    /// The identification and comment header pages (48 kHz, stereo, no pre-skip).
    pub(crate) fn headers(&mut self) -> Bytes {
        let mut head = BytesMut::with_capacity(19);
        head.put_slice(b"OpusHead");
        head.put_u8(1);
        head.put_u8(2);
        head.put_u16_le(0);
        head.put_u32_le(48_000);
        head.put_u16_le(0);
        head.put_u8(0);
        let mut tags = BytesMut::with_capacity(32);
        tags.put_slice(b"OpusTags");
        tags.put_u32_le(9);
        tags.put_slice(b"openvidu");
        tags.put_u8(b'-');
        tags.put_u32_le(0);
        let mut out = BytesMut::new();
        out.extend_from_slice(&self.page(2, 0, &head).unwrap_or_default());
        out.extend_from_slice(&self.page(0, 0, &tags).unwrap_or_default());
        out.freeze()
    }

    /// The page of one Opus packet sent at `rtp_timestamp` (48 kHz clock); empty when it
    /// cannot be carried (empty or oversized packet).
    pub(crate) fn packet(&mut self, packet: &[u8], rtp_timestamp: u64) -> Bytes {
        if packet.is_empty() {
            return Bytes::new();
        }
        let first = *self.first_timestamp.get_or_insert(rtp_timestamp);
        // The granule position counts the samples up to the end of the page; Opus packets from
        // WebRTC are 20 ms (960 samples).
        let granule = rtp_timestamp.saturating_sub(first) + 960;
        self.page(0, granule, packet).unwrap_or_default()
    }
}

/// Decodes a stream's audio into `pcm` until the tap closes (or the task is aborted).
pub(crate) async fn run_audio(env: DecoderEnv, mut tap: TrackTap, pcm: Arc<Mutex<PcmBuffer>>) {
    let mut assembler = FrameAssembler::new(tap.codec, tap.clock_rate);
    let mut decoder: Option<Decoder> = None;
    let mut ogg = OggOpus::new();
    let mut last_start: Option<Instant> = None;
    loop {
        let frames = match tap.packets.recv().await {
            Ok(packet) => assembler.push(packet),
            Err(RecvError::Lagged(_)) => {
                assembler.reset();
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        for frame in frames {
            if decoder.is_none() {
                if last_start.is_some_and(|t| t.elapsed() < RESTART_BACKOFF) {
                    continue;
                }
                last_start = Some(Instant::now());
                let pcm = pcm.clone();
                decoder = start_decoder(&env, &ffmpeg::audio_decoder_args(), "audio decoder", move |stdout| {
                    read_pcm(stdout, pcm)
                });
                ogg = OggOpus::new();
                let headers = ogg.headers();
                if let Some(d) = decoder.as_mut()
                    && !feed(d, &headers).await
                {
                    decoder = None;
                }
            }
            let page = ogg.packet(&frame.data, frame.rtp_timestamp);
            if let Some(d) = decoder.as_mut()
                && !page.is_empty()
                && !feed(d, &page).await
            {
                tracing::warn!(session = %env.ids.session, recording_id = %env.ids.recording,
                    stream = ?env.ids.stream, "audio decoder died or stalled; restarting it");
                decoder = None;
            }
        }
    }
}

/// Reads s16le PCM from a decoder into `pcm`.
async fn read_pcm(mut stdout: ChildStdout, pcm: Arc<Mutex<PcmBuffer>>) {
    let mut buf = vec![0u8; 8192];
    let mut carry: Option<u8> = None;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut pcm = lock(&pcm);
        let mut bytes = &buf[..n];
        if let Some(first) = carry.take()
            && let Some((&second, rest)) = bytes.split_first()
        {
            pcm.push_le_bytes(&[first, second]);
            bytes = rest;
        }
        let even = bytes.len() & !1;
        pcm.push_le_bytes(&bytes[..even]);
        carry = bytes.get(even).copied();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_sizes() {
        assert_eq!(decoded_size(320, 240, 640, 480), (320, 240));
        assert_eq!(decoded_size(321, 241, 640, 480), (320, 240));
        assert_eq!(decoded_size(1280, 720, 640, 480), (640, 360));
        assert_eq!(decoded_size(1, 1, 640, 480), (2, 2));
    }

    #[test]
    fn ivf_framing() {
        let h = ivf_header(RecordedCodec::Vp8, 320, 240);
        assert_eq!(h.len(), 32);
        assert_eq!(&h[..4], b"DKIF");
        assert_eq!(&h[8..12], b"VP80");
        assert_eq!(u16::from_le_bytes([h[12], h[13]]), 320);
        assert_eq!(&ivf_header(RecordedCodec::Vp9, 1, 1)[8..12], b"VP90");
        let f = ivf_frame(&[1, 2, 3], 40);
        assert_eq!(&f[..4], &3u32.to_le_bytes());
        assert_eq!(&f[4..12], &40u64.to_le_bytes());
        assert_eq!(&f[12..], &[1, 2, 3]);
    }

    #[test]
    fn ogg_pages_are_valid_and_parse_back() {
        let mut ogg = OggOpus::new();
        let mut file = ogg.headers().to_vec();
        // 255 bytes exactly needs a 0 lacing value after the 255.
        for (i, len) in [3usize, 255, 600].iter().enumerate() {
            file.extend_from_slice(&ogg.packet(&vec![0xf8; *len], 1000 + i as u64 * 960));
        }
        assert!(ogg.packet(&[], 5000).is_empty());
        assert!(ogg.packet(&vec![0; 70_000], 5000).is_empty());
        let (mut reader, header) =
            rtc::media::io::ogg_reader::OggReader::new(std::io::Cursor::new(file), true).expect("head");
        assert_eq!(header.channel_map, 0);
        assert_eq!(header.channels, 2);
        assert_eq!(header.sample_rate, 48_000);
        let (_tags, _) = reader.parse_next_page().expect("tags");
        let mut sizes = Vec::new();
        let mut granules = Vec::new();
        while let Ok((payload, page)) = reader.parse_next_page() {
            sizes.push(payload.len());
            granules.push(page.granule_position);
        }
        assert_eq!(sizes, vec![3, 255, 600]);
        assert_eq!(granules, vec![960, 1920, 2880]);
    }
}
