//! A streaming WebM (Matroska) muxer on `webm-iterable`'s tag writer.
//!
//! The layout is what a live recorder can write front to back: EBML header, a Segment of
//! unknown size, Info (with a Duration placeholder), Tracks, then Clusters of unknown size
//! (as browsers' MediaRecorder writes them), so every block reaches the output as soon as it
//! is written; a cluster ends at a video keyframe, after ~1 s, or when the block's 16-bit
//! relative timestamp would overflow. [`WebmWriter::finish`] just flushes,
//! which leaves a valid live-style file; on a seekable output
//! [`WebmWriter::finish_seekable`] also patches the Duration so players and ffprobe report the
//! right length.
//!
//! H264 is not allowed in WebM: an H264 track makes the file Matroska (DocType `matroska`,
//! `V_MPEG4/ISO/AVC` with an `avcC` CodecPrivate built from the first keyframe's SPS/PPS, and
//! frames converted from Annex-B to 4-byte length prefixes); such files get the `.mkv`
//! extension (see [`file_extension`]).

use std::io::{self, Seek, SeekFrom, Write};

use bytes::Bytes;
use webm_iterable::WriteOptions;
use webm_iterable::matroska_spec::{Master, MatroskaSpec};

use super::depacketize::nal_units;
use super::tap::RecordedCodec;

/// Offset of the Duration float inside the Info element (4-byte id + 8-byte size + 2-byte id + 1-byte size).
const DURATION_IN_INFO: u64 = 15;
/// Length of the Segment header: 4-byte id + 8-byte size.
const SEGMENT_HEADER: u64 = 12;
/// Longest cluster, in ms.
const MAX_CLUSTER_MS: i64 = 1000;
/// Largest cluster buffered in memory before it is written.
const MAX_CLUSTER_BYTES: usize = 4 * 1024 * 1024;

/// One track of a file.
#[derive(Clone, Debug)]
pub(crate) struct TrackSpec {
    /// The codec.
    pub(crate) codec: RecordedCodec,
    /// Video: width and height in pixels (from the first keyframe).
    pub(crate) dimensions: Option<(u16, u16)>,
    /// H264: the first keyframe (Annex-B), to build the `avcC` from its SPS and PPS.
    pub(crate) first_keyframe: Option<Bytes>,
}

impl TrackSpec {
    /// An Opus track (48 kHz, 2 channels).
    pub(crate) fn opus() -> Self {
        Self { codec: RecordedCodec::Opus, dimensions: None, first_keyframe: None }
    }

    /// A video track; `first_keyframe` is needed for H264.
    pub(crate) fn video(codec: RecordedCodec, dimensions: (u16, u16), first_keyframe: Bytes) -> Self {
        Self { codec, dimensions: Some(dimensions), first_keyframe: Some(first_keyframe) }
    }
}

/// The file extension for tracks of these codecs: `mkv` when there is H264, else `webm`.
pub(crate) fn file_extension(codecs: &[RecordedCodec]) -> &'static str {
    if codecs.contains(&RecordedCodec::H264) { "mkv" } else { "webm" }
}

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The cluster being filled.
struct Cluster {
    /// Cluster timestamp, ms.
    start: i64,
    /// Size of the buffered content.
    bytes: usize,
}

/// A streaming WebM/Matroska writer.
pub(crate) struct WebmWriter<W: Write> {
    tags: webm_iterable::WebmWriter<Counting<W>>,
    tracks: Vec<TrackSpec>,
    /// File offset of the Segment element.
    segment_offset: u64,
    cluster: Option<Cluster>,
    /// Per track: the last two written times, for the duration of the last frame.
    track_times: Vec<(Option<i64>, Option<i64>)>,
    /// Whether a frame was written.
    wrote: bool,
}

fn tag_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl<W: Write> WebmWriter<W> {
    /// Writes the header for `tracks` (numbered from 1 in this order).
    pub(crate) fn new(out: W, tracks: &[TrackSpec]) -> io::Result<Self> {
        if tracks.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a WebM file needs a track"));
        }
        let matroska = tracks.iter().any(|t| t.codec == RecordedCodec::H264);
        let mut tags = webm_iterable::WebmWriter::new(Counting { inner: out, written: 0 });
        tags.write(&MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType(if matroska { "matroska" } else { "webm" }.into()),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ])))
        .map_err(tag_error)?;
        let segment_offset = tags.get_ref().written;
        // Unknown size, like the clusters inside it (live-style; only the Duration is patched).
        tags.write_advanced(&MatroskaSpec::Segment(Master::Start), WriteOptions::is_unknown_sized_element())
            .map_err(tag_error)?;
        tags.write_advanced(&MatroskaSpec::Info(Master::Start), WriteOptions::set_size_byte_count(8))
            .map_err(tag_error)?;
        tags.write(&MatroskaSpec::Duration(0.0)).map_err(tag_error)?;
        tags.write(&MatroskaSpec::TimestampScale(1_000_000)).map_err(tag_error)?;
        tags.write(&MatroskaSpec::MuxingApp("openvidu-rs".into())).map_err(tag_error)?;
        tags.write(&MatroskaSpec::WritingApp("openvidu-rs".into())).map_err(tag_error)?;
        tags.write(&MatroskaSpec::Info(Master::End)).map_err(tag_error)?;

        let mut entries = Vec::new();
        for (i, track) in tracks.iter().enumerate() {
            entries.push(track_entry(i as u64 + 1, track)?);
        }
        tags.write(&MatroskaSpec::Tracks(Master::Full(entries))).map_err(tag_error)?;
        Ok(Self {
            tags,
            tracks: tracks.to_vec(),
            segment_offset,
            cluster: None,
            track_times: vec![(None, None); tracks.len()],
            wrote: false,
        })
    }

    /// Writes one frame of track `track` (0-based, in the order given to [`Self::new`]) at
    /// `time_ms` from the start of the file. Times must not decrease across tracks; a time
    /// before the last written one is moved up to it.
    pub(crate) fn write_frame(&mut self, track: usize, time_ms: i64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let Some(spec) = self.tracks.get(track) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no track {track}")));
        };
        // Each track's times strictly increase (equal times make players and ffmpeg drop or
        // reorder frames); tracks are not clamped to each other: a frame of one track that comes
        // after later frames of the other keeps its own time, relative to the cluster (signed).
        let time = match self.track_times[track].1 {
            Some(last) => time_ms.max(last + 1),
            None => time_ms.max(0),
        };
        let video_key = keyframe && spec.codec.is_video();
        let converted;
        let data = if spec.codec == RecordedCodec::H264 {
            converted = annexb_to_length_prefixed(data);
            &converted[..]
        } else {
            data
        };
        let new_cluster = match &self.cluster {
            None => true,
            Some(c) => {
                let rel = time - c.start;
                !(i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&rel)
                    || (video_key && rel > 0)
                    || rel >= MAX_CLUSTER_MS
                    || c.bytes + data.len() > MAX_CLUSTER_BYTES
            }
        };
        if new_cluster {
            self.close_cluster()?;
            // Unknown size: each block goes out as soon as it is written (a recorder's file
            // holds its first frame at once); the next Cluster ends this one.
            self.tags
                .write_advanced(&MatroskaSpec::Cluster(Master::Start), WriteOptions::is_unknown_sized_element())
                .map_err(tag_error)?;
            self.tags.write(&MatroskaSpec::Timestamp(time as u64)).map_err(tag_error)?;
            self.cluster = Some(Cluster { start: time, bytes: 0 });
        }
        let start = self.cluster.as_ref().map_or(time, |c| c.start);
        let rel = (time - start) as i16;
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | (track as u8 + 1));
        block.extend_from_slice(&rel.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(data);
        self.tags.write(&MatroskaSpec::SimpleBlock(block)).map_err(tag_error)?;
        if let Some(c) = &mut self.cluster {
            c.bytes += data.len() + 4;
        }
        let times = &mut self.track_times[track];
        *times = (times.1, Some(time));
        self.wrote = true;
        Ok(())
    }

    /// The file's duration so far, ms: the last frame's time plus its estimated duration.
    pub(crate) fn duration_ms(&self) -> f64 {
        if !self.wrote {
            return 0.0;
        }
        let end = self
            .track_times
            .iter()
            .zip(&self.tracks)
            .filter_map(|((prev, last), spec)| {
                let last = (*last)?;
                let default = if spec.codec.is_video() { 33 } else { 20 };
                let step = prev.map_or(default, |p| (last - p).clamp(1, 1000));
                Some(last + step)
            })
            .max()
            .unwrap_or(0);
        end as f64
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        if self.cluster.take().is_some() {
            self.tags.write(&MatroskaSpec::Cluster(Master::End)).map_err(tag_error)?;
        }
        Ok(())
    }

    /// Writes the open cluster out and returns the output, leaving a live-style file (unknown
    /// Segment size, no Duration): for outputs that cannot seek (pipes).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.close_cluster()?;
        let mut out = self.tags.into_inner().map_err(tag_error)?;
        out.flush()?;
        Ok(out.inner)
    }
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Like [`Self::finish`], then patches the Duration. The Segment keeps its unknown size:
    /// its clusters have unknown sizes too, which a finite parent may not hold.
    pub(crate) fn finish_seekable(self) -> io::Result<W> {
        let duration = self.duration_ms();
        let segment_offset = self.segment_offset;
        let mut tags = self;
        tags.close_cluster()?;
        let counting = tags.tags.into_inner().map_err(tag_error)?;
        let end = counting.written;
        let mut out = counting.inner;
        out.seek(SeekFrom::Start(segment_offset + SEGMENT_HEADER + DURATION_IN_INFO))?;
        out.write_all(&duration.to_be_bytes())?;
        out.seek(SeekFrom::Start(end))?;
        out.flush()?;
        Ok(out)
    }
}

/// The TrackEntry of track `number`.
fn track_entry(number: u64, track: &TrackSpec) -> io::Result<MatroskaSpec> {
    let mut children = vec![
        MatroskaSpec::TrackNumber(number),
        MatroskaSpec::TrackUID(number.wrapping_mul(0x9E37_79B9).max(1) ^ u64::from(rand::random::<u32>()) << 20),
        MatroskaSpec::FlagLacing(0),
    ];
    match track.codec {
        RecordedCodec::Opus => {
            children.push(MatroskaSpec::TrackType(2));
            children.push(MatroskaSpec::CodecID("A_OPUS".into()));
            children.push(MatroskaSpec::CodecPrivate(opus_head()));
            children.push(MatroskaSpec::CodecDelay(0));
            children.push(MatroskaSpec::SeekPreRoll(80_000_000));
            children.push(MatroskaSpec::Audio(Master::Full(vec![
                MatroskaSpec::SamplingFrequency(48000.0),
                MatroskaSpec::Channels(2),
            ])));
        }
        codec => {
            let (w, h) = track.dimensions.unwrap_or((640, 480));
            children.push(MatroskaSpec::TrackType(1));
            children.push(MatroskaSpec::CodecID(
                match codec {
                    RecordedCodec::Vp8 => "V_VP8",
                    RecordedCodec::Vp9 => "V_VP9",
                    _ => "V_MPEG4/ISO/AVC",
                }
                .into(),
            ));
            if codec == RecordedCodec::H264 {
                let avcc =
                    track.first_keyframe.as_deref().and_then(avc_decoder_configuration).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "H264 keyframe without SPS and PPS")
                    })?;
                children.push(MatroskaSpec::CodecPrivate(avcc));
            }
            children.push(MatroskaSpec::Video(Master::Full(vec![
                MatroskaSpec::PixelWidth(u64::from(w)),
                MatroskaSpec::PixelHeight(u64::from(h)),
            ])));
        }
    }
    Ok(MatroskaSpec::TrackEntry(Master::Full(children)))
}

/// The OpusHead CodecPrivate: version 1, 2 channels, no pre-skip, 48 kHz, gain 0, family 0.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(2);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&48000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

/// An `avcC` (AVCDecoderConfigurationRecord) from the first SPS and PPS of an Annex-B access unit.
fn avc_decoder_configuration(access_unit: &[u8]) -> Option<Vec<u8>> {
    let sps = nal_units(access_unit).find(|n| n.first().is_some_and(|b| b & 0x1F == 7))?;
    let pps = nal_units(access_unit).find(|n| n.first().is_some_and(|b| b & 0x1F == 8))?;
    if sps.len() < 4 {
        return None;
    }
    let mut out = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    out.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
    out.extend_from_slice(pps);
    Some(out)
}

/// Annex-B (start codes) → 4-byte big-endian length prefixes.
fn annexb_to_length_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in nal_units(data) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// `ffprobe -show_streams -show_format` as JSON.
    pub(crate) fn ffprobe(path: &Path) -> serde_json::Value {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
    }

    /// Decodes the whole file; returns what ffmpeg printed (empty when clean).
    pub(crate) fn decode_errors(path: &Path) -> String {
        let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "null", "-"]).output();
        let out = out.expect("ffmpeg runs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// Runs ffmpeg with `args`.
    pub(crate) fn ffmpeg(args: &[&str]) {
        let status = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).status().expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg {args:?} failed");
    }

    /// VP8 frames with their IVF frame numbers, and Opus packets.
    pub(crate) type TestMedia = (Vec<(u64, Bytes)>, Vec<Bytes>);

    /// VP8 frames (IVF) and Opus packets (Ogg) of `secs` seconds of test media.
    pub(crate) fn test_media(dir: &Path, secs: u32) -> TestMedia {
        let ivf = dir.join("in.ivf");
        let ogg = dir.join("in.ogg");
        let t = secs.to_string();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-g",
            "15",
            "-b:v",
            "300k",
            ivf.to_str().unwrap(),
        ]);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &t,
            "-ac",
            "2",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            ogg.to_str().unwrap(),
        ]);
        let (mut reader, _) = rtc::media::io::ivf_reader::IVFReader::new(std::fs::File::open(&ivf).unwrap()).unwrap();
        let mut video = Vec::new();
        while let Ok((frame, header)) = reader.parse_next_frame() {
            video.push((header.timestamp, frame.freeze()));
        }
        let audio = ogg_packets(&std::fs::read(&ogg).unwrap())
            .into_iter()
            .filter(|p| !p.starts_with(b"OpusHead") && !p.starts_with(b"OpusTags"))
            .collect();
        (video, audio)
    }

    /// The packets of an Ogg stream (rtc's OggReader gives whole pages, which hold several).
    fn ogg_packets(data: &[u8]) -> Vec<Bytes> {
        let mut packets = Vec::new();
        let mut current = Vec::new();
        let mut i = 0;
        while i + 27 <= data.len() && &data[i..i + 4] == b"OggS" {
            let segments = usize::from(data[i + 26]);
            let table = &data[i + 27..i + 27 + segments];
            let mut pos = i + 27 + segments;
            for &lace in table {
                current.extend_from_slice(&data[pos..pos + usize::from(lace)]);
                pos += usize::from(lace);
                if lace < 255 {
                    packets.push(Bytes::from(std::mem::take(&mut current)));
                }
            }
            i = pos;
        }
        packets
    }

    #[test]
    fn vp8_and_opus_make_a_webm_ffprobe_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let (video, audio) = test_media(dir.path(), 3);
        assert!(video.len() >= 40 && audio.len() >= 100, "{} video, {} audio", video.len(), audio.len());
        let dims = super::super::depacketize::video_dimensions(RecordedCodec::Vp8, &video[0].1).unwrap();
        assert_eq!(dims, (320, 240));
        let path = dir.path().join("out.webm");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = WebmWriter::new(
            std::io::BufWriter::new(file),
            &[TrackSpec::video(RecordedCodec::Vp8, dims, video[0].1.clone()), TrackSpec::opus()],
        )
        .unwrap();
        // Interleave: video at 15 fps (IVF timestamps are frame numbers), audio every 20 ms.
        let mut frames: Vec<(i64, usize, bool, Bytes)> = video
            .iter()
            .map(|(n, data)| ((*n as i64) * 1000 / 15, 0, data[0] & 1 == 0, data.clone()))
            .chain(audio.iter().enumerate().map(|(i, data)| (i as i64 * 20, 1, true, data.clone())))
            .collect();
        frames.sort_by_key(|f| (f.0, f.1));
        for (t, track, key, data) in &frames {
            w.write_frame(*track, *t, *key, data).unwrap();
        }
        w.finish_seekable().unwrap();
        let probe = ffprobe(&path);
        let streams = probe["streams"].as_array().unwrap();
        assert_eq!(streams[0]["codec_name"], "vp8");
        assert_eq!(streams[0]["width"], 320);
        assert_eq!(streams[0]["height"], 240);
        assert_eq!(streams[1]["codec_name"], "opus");
        let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - 3.0).abs() < 0.2, "duration {duration}");
        assert_eq!(decode_errors(&path), "");
    }

    /// Video that reaches the writer 400 ms behind the audio (a late track) keeps its own
    /// times, and two frames of a track at the same millisecond are kept apart: the file decodes
    /// with no complaint about non-increasing timestamps (seen in CI when late video frames were
    /// clamped to the audio's latest time).
    #[test]
    fn a_late_track_keeps_its_own_times() {
        let dir = tempfile::tempdir().unwrap();
        let (video, audio) = test_media(dir.path(), 3);
        let dims = super::super::depacketize::video_dimensions(RecordedCodec::Vp8, &video[0].1).unwrap();
        let path = dir.path().join("late.webm");
        let mut w = WebmWriter::new(
            std::fs::File::create(&path).unwrap(),
            &[TrackSpec::video(RecordedCodec::Vp8, dims, video[0].1.clone()), TrackSpec::opus()],
        )
        .unwrap();
        // Order of arrival: each frame when its time + its track's delay has passed.
        let mut frames: Vec<(i64, i64, usize, bool, Bytes)> = video
            .iter()
            .map(|(n, data)| {
                let t = (*n as i64) * 1000 / 15;
                (t + 400, t, 0, data[0] & 1 == 0, data.clone())
            })
            .chain(audio.iter().enumerate().map(|(i, data)| (i as i64 * 20, i as i64 * 20, 1, true, data.clone())))
            .collect();
        frames.sort_by_key(|f| (f.0, f.2));
        for (_, t, track, key, data) in &frames {
            w.write_frame(*track, *t, *key, data).unwrap();
        }
        // The same millisecond twice on one track.
        w.write_frame(1, 3000, true, &audio[0]).unwrap();
        w.write_frame(1, 3000, true, &audio[1]).unwrap();
        w.finish_seekable().unwrap();
        let probe = ffprobe(&path);
        assert_eq!(probe["streams"][0]["r_frame_rate"], "15/1", "{probe}");
        assert_eq!(decode_errors(&path), "");
    }

    #[test]
    fn a_live_file_without_patching_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (_, audio) = test_media(dir.path(), 1);
        let path = dir.path().join("live.webm");
        let mut w = WebmWriter::new(std::fs::File::create(&path).unwrap(), &[TrackSpec::opus()]).unwrap();
        for (i, data) in audio.iter().enumerate() {
            // A 40 s jump exercises the i16 relative timestamp overflow.
            let t = i as i64 * 20 + if i > 20 { 40_000 } else { 0 };
            w.write_frame(0, t, true, data).unwrap();
        }
        w.finish().unwrap();
        let probe = ffprobe(&path);
        assert_eq!(probe["streams"][0]["codec_name"], "opus");
        assert_eq!(decode_errors(&path), "");
    }

    #[test]
    fn h264_goes_into_matroska() {
        let dir = tempfile::tempdir().unwrap();
        let h264 = dir.path().join("in.h264");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "15",
            "-x264-params",
            "aud=1",
            "-f",
            "h264",
            h264.to_str().unwrap(),
        ]);
        let stream = std::fs::read(&h264).unwrap();
        // Split into access units at the AUDs.
        let mut units: Vec<Vec<u8>> = Vec::new();
        for nal in nal_units(&stream) {
            if nal[0] & 0x1F == 9 || units.is_empty() {
                units.push(Vec::new());
            }
            if let Some(u) = units.last_mut() {
                u.extend_from_slice(&[0, 0, 0, 1]);
                u.extend_from_slice(nal);
            }
        }
        assert_eq!(units.len(), 30);
        let first = Bytes::from(units[0].clone());
        let dims = super::super::depacketize::video_dimensions(RecordedCodec::H264, &first).unwrap();
        assert_eq!(dims, (320, 240));
        assert_eq!(file_extension(&[RecordedCodec::H264, RecordedCodec::Opus]), "mkv");
        let path = dir.path().join("out.mkv");
        let mut w = WebmWriter::new(
            std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
            &[TrackSpec::video(RecordedCodec::H264, dims, first)],
        )
        .unwrap();
        for (i, unit) in units.iter().enumerate() {
            let key = nal_units(unit).any(|n| n[0] & 0x1F == 5);
            w.write_frame(0, i as i64 * 1000 / 15, key, unit).unwrap();
        }
        w.finish_seekable().unwrap();
        let probe = ffprobe(&path);
        assert_eq!(probe["streams"][0]["codec_name"], "h264");
        assert_eq!(probe["streams"][0]["width"], 320);
        let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - 2.0).abs() < 0.2, "duration {duration}");
        assert_eq!(decode_errors(&path), "");
    }
}
