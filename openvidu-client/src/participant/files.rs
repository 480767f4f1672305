//! Media read from files: the files a [`MediaSource`] names, read and checked at publish time,
//! and the Opus packets of an Ogg Opus file (RFC 7845).
//!
//! `rtc`'s [`OggReader`] hands out whole pages (and checks their CRC), but an Ogg page usually
//! holds many packets (ffmpeg's muxer packs up to a second, 50 Opus packets, per page) and a
//! packet may continue on the next page. The page's segment table says where packets end, so
//! this module reads it from the file bytes at the offset of each page the reader returns, and
//! splits (and joins) packets by its lacing values. Each packet's duration comes from its TOC
//! byte (RFC 6716 §3.1), which is exact per packet; the granule positions only cross-check it.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtc::media::io::ogg_reader::{COMMENT_PAGE_SIGNATURE, OggReader, PAGE_HEADER_SIZE, parse_opus_head};

use super::media::{IvfInfo, check_ivf};
use super::{MediaSource, ParticipantError};

/// Opus always runs at 48 kHz (granule positions and TOC durations count these samples).
const OPUS_RATE: u64 = 48_000;
/// The longest an Opus packet may last: 120 ms.
const MAX_PACKET_SAMPLES: u32 = 5_760;
/// Page header flag: the page's first packet continues one from the previous page.
const CONTINUED: u8 = 0x01;
/// Page header flag: the first page of a logical stream.
const BEGINNING: u8 = 0x02;
/// Granule position of a page on which no packet ends.
const NO_GRANULE: u64 = u64::MAX;

/// One Opus packet of an Ogg file and how long it plays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpusPacket {
    /// The packet, as RTP carries it (RFC 7587).
    pub(crate) data: Bytes,
    /// Its playing time, from its TOC byte.
    pub(crate) duration: Duration,
}

/// The audio of an Ogg Opus file.
#[derive(Clone, Debug)]
pub(crate) struct OggOpus {
    /// The audio packets in order (never empty).
    pub(crate) packets: Arc<[OpusPacket]>,
    /// Channels of the `OpusHead`.
    pub(crate) channels: u8,
    /// The sum of the packets' durations.
    pub(crate) duration: Duration,
}

/// The files of a publication, read and checked.
#[derive(Debug, Default)]
pub(crate) struct LoadedMedia {
    /// The IVF file's bytes, when the video track plays one.
    pub(crate) video: Option<(Bytes, IvfInfo)>,
    /// The Ogg file's packets, when the audio track plays one.
    pub(crate) audio: Option<OggOpus>,
}

async fn read(path: &Path) -> Result<Bytes, ParticipantError> {
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|e| ParticipantError::MediaSource(format!("{}: {e}", path.display())))
}

fn in_file(path: &Path, e: ParticipantError) -> ParticipantError {
    match e {
        ParticipantError::MediaSource(m) => ParticipantError::MediaSource(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Reads and checks the files `source` names for the tracks requested (`audio`, `video`). A
/// requested track of [`MediaSource::Files`] without its file is an error; files of tracks not
/// requested are not read.
pub(crate) async fn load(source: &MediaSource, audio: bool, video: bool) -> Result<LoadedMedia, ParticipantError> {
    let mut loaded = LoadedMedia::default();
    let (video_path, audio_path) = match source {
        MediaSource::Synthetic { .. } => return Ok(loaded),
        MediaSource::IvfFile(path) => (video.then_some(path.as_path()), None),
        MediaSource::Files { video: v, audio: a } => {
            let video_path = match (video, v) {
                (true, None) => {
                    return Err(ParticipantError::MediaSource(
                        "a video track is requested but MediaSource::Files names no video (IVF) file".into(),
                    ));
                }
                (true, Some(path)) => Some(path.as_path()),
                (false, _) => None,
            };
            let audio_path = match (audio, a) {
                (true, None) => {
                    return Err(ParticipantError::MediaSource(
                        "an audio track is requested but MediaSource::Files names no audio (Ogg Opus) file".into(),
                    ));
                }
                (true, Some(path)) => Some(path.as_path()),
                (false, _) => None,
            };
            (video_path, audio_path)
        }
    };
    if let Some(path) = video_path {
        let data = read(path).await?;
        let info = check_ivf(&data).map_err(|e| in_file(path, e))?;
        tracing::debug!(path = %path.display(), width = info.width, height = info.height, period = ?info.period,
            "VP8 IVF file loaded");
        loaded.video = Some((data, info));
    }
    if let Some(path) = audio_path {
        let data = read(path).await?;
        let opus = parse_ogg_opus(&data).map_err(|e| in_file(path, e))?;
        tracing::debug!(path = %path.display(), packets = opus.packets.len(), channels = opus.channels,
            duration = ?opus.duration, "Ogg Opus file loaded");
        loaded.audio = Some(opus);
    }
    Ok(loaded)
}

/// The 48 kHz samples an Opus packet holds, from its TOC byte (RFC 6716 §3.1); `None` for a
/// malformed packet.
pub(crate) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame: u32 = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config & 3)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config & 1)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config & 3)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let samples = frame * frames;
    (frames > 0 && samples <= MAX_PACKET_SAMPLES).then_some(samples)
}

fn samples_to_duration(samples: u64) -> Duration {
    Duration::from_nanos(samples.saturating_mul(1_000_000_000) / OPUS_RATE)
}

/// Splits an Ogg Opus file into its audio packets: checks the pages (signature, CRC), the
/// `OpusHead` and `OpusTags` headers (the first two packets, skipped), and every audio packet's
/// TOC. Only the first logical stream is read.
pub(crate) fn parse_ogg_opus(data: &Bytes) -> Result<OggOpus, ParticipantError> {
    let err = |m: String| ParticipantError::MediaSource(format!("Ogg Opus: {m}"));
    let mut reader = OggReader::new_with_options(Cursor::new(data.clone()), true);
    let mut offset = 0usize;
    let mut serial = None;
    let mut channels = 0u8;
    let mut index = 0u64; // packets completed in the stream, headers included
    let mut partial: Option<BytesMut> = None;
    let mut dropping = false; // the continuation of a packet whose start was lost
    let mut packets = Vec::new();
    let mut total_samples = 0u64;
    let mut last_granule = None;
    while offset < data.len() {
        let (payload, header) = reader.parse_next_page().map_err(|e| err(format!("page at byte {offset}: {e}")))?;
        let payload = payload.freeze();
        if data.get(offset..offset + 4) != Some(b"OggS".as_slice()) {
            return Err(err(format!("no Ogg page at byte {offset}")));
        }
        // The reader read exactly this page: header, segment table, payload.
        let segments = data.get(offset + PAGE_HEADER_SIZE - 1).map(|&n| usize::from(n)).unwrap_or(0);
        let lacing = data
            .get(offset + PAGE_HEADER_SIZE..offset + PAGE_HEADER_SIZE + segments)
            .ok_or_else(|| err(format!("truncated segment table at byte {offset}")))?;
        if lacing.iter().map(|&l| usize::from(l)).sum::<usize>() != payload.len() {
            return Err(err(format!("the segment table at byte {offset} does not match the page")));
        }
        let page_at = offset;
        offset += PAGE_HEADER_SIZE + segments + payload.len();
        match serial {
            None if header.header_type & BEGINNING == 0 => {
                return Err(err("the first page does not begin a stream".into()));
            }
            None => serial = Some(header.serial),
            Some(s) if s != header.serial => continue, // another logical stream
            Some(_) => {}
        }
        if header.header_type & CONTINUED == 0 {
            if partial.take().is_some() {
                tracing::debug!(page_at, "Ogg packet cut short by a page that does not continue it; dropped");
            }
            dropping = false;
        } else if partial.is_none() && index > 0 {
            dropping = true;
        }
        let mut start = 0usize;
        let mut at = 0usize;
        for &l in lacing {
            at += usize::from(l);
            if l == 255 {
                continue; // the packet goes on
            }
            let packet = match partial.take() {
                Some(mut p) => {
                    p.extend_from_slice(payload.get(start..at).unwrap_or_default());
                    p.freeze()
                }
                None => payload.slice(start..at),
            };
            start = at;
            if std::mem::take(&mut dropping) {
                continue;
            }
            match index {
                0 => {
                    let head = parse_opus_head(&packet).map_err(|e| err(format!("OpusHead: {e}")))?;
                    channels = head.channels;
                }
                1 if !packet.starts_with(COMMENT_PAGE_SIGNATURE) => {
                    return Err(err("the second packet is not OpusTags".into()));
                }
                1 => {}
                _ if packet.is_empty() => {} // carries no audio
                _ => {
                    let samples = opus_packet_samples(&packet)
                        .ok_or_else(|| err(format!("malformed Opus packet {} (page at byte {page_at})", index - 2)))?;
                    total_samples += u64::from(samples);
                    packets.push(OpusPacket { data: packet, duration: samples_to_duration(u64::from(samples)) });
                }
            }
            index += 1;
        }
        if start < payload.len() {
            // The last packet continues on the next page.
            let rest = payload.get(start..).unwrap_or_default();
            partial.get_or_insert_with(BytesMut::new).extend_from_slice(rest);
        }
        if header.granule_position != NO_GRANULE && index > 2 {
            last_granule = Some(header.granule_position);
        }
    }
    if index == 0 {
        return Err(err("no OpusHead".into()));
    }
    if packets.is_empty() {
        return Err(err("no audio packets".into()));
    }
    if let Some(granule) = last_granule
        && granule > total_samples
    {
        // The end granule may only trim the last packet, never exceed what the packets hold.
        tracing::debug!(granule, total_samples, "Ogg granule positions promise more audio than the packets hold");
    }
    Ok(OggOpus { packets: packets.into(), channels, duration: samples_to_duration(total_samples) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Ogg CRC-32 (polynomial 0x04c11db7, no reflection, zero start).
    fn crc(data: &[u8]) -> u32 {
        let mut sum = 0u32;
        for &b in data {
            sum ^= u32::from(b) << 24;
            for _ in 0..8 {
                sum = if sum & 0x8000_0000 != 0 { (sum << 1) ^ 0x04c1_1db7 } else { sum << 1 };
            }
        }
        sum
    }

    /// One Ogg page whose payload is `pieces` laced as given (`ends`: whether the last piece
    /// ends its packet).
    fn page(flags: u8, granule: u64, seq: u32, pieces: &[&[u8]], ends: bool) -> Vec<u8> {
        let mut lacing = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            if ends || i + 1 < pieces.len() {
                lacing.push((p.len() % 255) as u8);
            }
        }
        let mut out = b"OggS".to_vec();
        out.extend_from_slice(&[0, flags]);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&7u32.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(lacing.len() as u8);
        out.extend_from_slice(&lacing);
        for p in pieces {
            out.extend_from_slice(p);
        }
        let sum = crc(&out);
        out[22..26].copy_from_slice(&sum.to_le_bytes());
        out
    }

    fn head() -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.extend_from_slice(&[1, 2]);
        h.extend_from_slice(&312u16.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0]);
        h
    }

    fn tags() -> Vec<u8> {
        let mut t = b"OpusTags".to_vec();
        t.extend_from_slice(&4u32.to_le_bytes());
        t.extend_from_slice(b"test");
        t.extend_from_slice(&0u32.to_le_bytes());
        t
    }

    /// A CELT 20 ms packet (TOC 0xfc: config 31, stereo, one frame) of `len` bytes.
    fn celt20(len: usize, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; len];
        p[0] = 0xfc;
        p
    }

    #[test]
    fn opus_durations_come_from_the_toc() {
        assert_eq!(opus_packet_samples(&[0xfc]), Some(960)); // CELT 20 ms, 1 frame
        assert_eq!(opus_packet_samples(&[0xf8 | 0x01]), Some(1920)); // 2 frames
        assert_eq!(opus_packet_samples(&[0x80]), Some(120)); // CELT 2.5 ms
        assert_eq!(opus_packet_samples(&[0x18]), Some(2880)); // SILK 60 ms
        assert_eq!(opus_packet_samples(&[0x60]), Some(480)); // hybrid 10 ms
        assert_eq!(opus_packet_samples(&[0x68]), Some(960)); // hybrid 20 ms
        assert_eq!(opus_packet_samples(&[0x03 | 0x18, 2]), Some(5760)); // 2 × 60 ms (code 3)
        assert_eq!(opus_packet_samples(&[0x03 | 0x18, 3]), None, "longer than 120 ms");
        assert_eq!(opus_packet_samples(&[0x03, 0]), None, "no frames");
        assert_eq!(opus_packet_samples(&[0x03]), None, "code 3 without its count byte");
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(samples_to_duration(960), Duration::from_millis(20));
        assert_eq!(samples_to_duration(120), Duration::from_micros(2500));
    }

    #[test]
    fn ogg_pages_are_split_into_packets_and_joined_across_pages() {
        let (a, b, c, d) = (celt20(80, 1), celt20(300, 2), celt20(600, 3), celt20(90, 4));
        let mut file = page(BEGINNING, 0, 0, &[&head()], true);
        file.extend(page(0, 0, 1, &[&tags()], true));
        // Three packets on one page, the third (600 bytes) starting there and ending on the next
        // (a packet goes on past a page only after whole 255-byte segments).
        file.extend(page(0, 1920, 2, &[&a, &b, &c[..510]], false));
        file.extend(page(CONTINUED, 3840, 3, &[&c[510..], &d], true));
        let ogg = parse_ogg_opus(&Bytes::from(file)).expect("parses");
        assert_eq!(ogg.channels, 2);
        let sizes: Vec<(usize, u8)> = ogg.packets.iter().map(|p| (p.data.len(), p.data[1])).collect();
        assert_eq!(sizes, vec![(80, 1), (300, 2), (600, 3), (90, 4)]);
        assert_eq!(&ogg.packets[2].data[..], &c[..]);
        assert!(ogg.packets.iter().all(|p| p.duration == Duration::from_millis(20)));
        assert_eq!(ogg.duration, Duration::from_millis(80));
    }

    #[test]
    fn malformed_ogg_files_are_refused() {
        let ok_head = page(BEGINNING, 0, 0, &[&head()], true);
        let ok_tags = page(0, 0, 1, &[&tags()], true);
        let audio = page(0, 960, 2, &[&celt20(50, 0)], true);
        let refuse = |file: Vec<u8>, what: &str| {
            let e = parse_ogg_opus(&Bytes::from(file)).expect_err(what);
            assert!(matches!(e, ParticipantError::MediaSource(_)), "{what}: {e}");
        };
        refuse(Vec::new(), "empty");
        refuse(b"DKIF not an ogg file at all, really not".to_vec(), "not Ogg");
        refuse([ok_head.clone(), ok_tags.clone()].concat(), "no audio");
        refuse([ok_head.clone(), ok_tags.clone(), page(0, 960, 2, &[&[0x03]], true)].concat(), "bad TOC");
        refuse([ok_head.clone(), audio.clone()].concat(), "no OpusTags");
        let mut corrupt = [ok_head.clone(), ok_tags.clone(), audio.clone()].concat();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        refuse(corrupt, "CRC mismatch");
        let mut vorbis = page(BEGINNING, 0, 0, &[b"\x01vorbis\0\0\0\0\x02\x44\xac\0\0"], true);
        vorbis.extend(ok_tags);
        refuse(vorbis, "not Opus");
    }
}
