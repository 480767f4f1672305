//! Pure SDP inspection and munging: which codecs an offer has, which one a publisher gets, where
//! to announce bandwidth. No I/O.

use std::io::Cursor;

use openvidu_core::model::VideoCodec;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sdp::{MediaDescription, SessionDescription};

use crate::node::{MediaError, codec_name};

#[cfg(test)]
mod tests;

/// The most text we accept as an SDP (a browser's offer is a few kB).
const MAX_SDP_LEN: usize = 64 * 1024;

/// The m-sections of a parsed SDP, each with its codecs read once.
///
/// The crate's `MediaDescription::codecs` re-reads every attribute line of a section at each
/// call; checking an offer's codecs, then pruning it, read each section's table twice (6% of
/// the media thread in a storm of joins, half of it now saved).
#[derive(Debug)]
pub(crate) struct Sdp {
    /// The m-sections, in order.
    pub sections: Vec<Section>,
}

/// One m-section of an [`Sdp`].
#[derive(Debug)]
pub(crate) struct Section {
    /// `Unspecified` for data channels and unknown media.
    pub kind: RtpCodecKind,
    /// Not rejected (its port is not 0).
    pub live: bool,
    /// Its codecs, in the order of its `m=` format list.
    pub codecs: Vec<OfferedCodec>,
}

impl Sdp {
    /// The first live section of `kind`.
    pub(crate) fn section(&self, kind: RtpCodecKind) -> Option<&Section> {
        self.sections.iter().find(|s| s.kind == kind && s.live)
    }

    /// Whether a live section of `kind` offers the codec with this MIME type.
    pub(crate) fn offers_mime(&self, kind: RtpCodecKind, mime: &str) -> bool {
        self.sections.iter().filter(|s| s.kind == kind && s.live).flat_map(|s| &s.codecs).any(|c| c.is(kind, mime))
    }
}

/// Parses `sdp`, rejecting empty, oversized or malformed text and descriptions without any audio
/// or video section.
pub(crate) fn parse(sdp: &str) -> Result<Sdp, MediaError> {
    if sdp.trim().is_empty() {
        return Err(MediaError::Sdp("empty SDP".into()));
    }
    if sdp.len() > MAX_SDP_LEN {
        return Err(MediaError::Sdp(format!("SDP of {} bytes is larger than {MAX_SDP_LEN}", sdp.len())));
    }
    let description = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| MediaError::Sdp(format!("malformed SDP: {e}")))?;
    let sections: Vec<Section> = description
        .media_descriptions
        .iter()
        .map(|m| {
            let kind = kind_of(m);
            Section {
                kind,
                live: m.media_name.port.value != 0,
                codecs: if kind == RtpCodecKind::Unspecified { Vec::new() } else { offered_codecs(m) },
            }
        })
        .collect();
    if sections.iter().all(|s| s.kind == RtpCodecKind::Unspecified) {
        return Err(MediaError::Sdp("SDP has no audio or video section".into()));
    }
    Ok(Sdp { sections })
}

/// The kind of an m-section (`Unspecified` for data channels and unknown media).
fn kind_of(media: &MediaDescription) -> RtpCodecKind {
    match media.media_name.media.as_str() {
        "audio" => RtpCodecKind::Audio,
        "video" => RtpCodecKind::Video,
        _ => RtpCodecKind::Unspecified,
    }
}

/// An offered codec, in the section's preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OfferedCodec {
    pub payload_type: u8,
    pub name: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
}

impl OfferedCodec {
    /// Whether this codec, offered in a section of `kind`, is the supported codec `mime`.
    pub(crate) fn is(&self, kind: RtpCodecKind, mime: &str) -> bool {
        supported_mime(kind, &self.name).is_some_and(|m| m.eq_ignore_ascii_case(mime))
    }
}

/// The codecs of a section, in the order of its `m=` format list.
fn offered_codecs(media: &MediaDescription) -> Vec<OfferedCodec> {
    let codecs = media.codecs();
    media
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| codecs.get(&pt))
        .map(|c| OfferedCodec {
            payload_type: c.payload_type,
            name: c.name.clone(),
            clock_rate: c.clock_rate,
            channels: c.encoding_parameters.parse().unwrap_or(0),
            fmtp: c.fmtp.clone(),
        })
        .collect()
}

/// The MIME type of a supported codec name, `None` for the rest (RTX, FEC, AV1, …).
pub(crate) fn supported_mime(kind: RtpCodecKind, name: &str) -> Option<&'static str> {
    let name = name.to_ascii_uppercase();
    match (kind, name.as_str()) {
        (RtpCodecKind::Video, "VP8") => Some(MIME_TYPE_VP8),
        (RtpCodecKind::Video, "VP9") => Some(MIME_TYPE_VP9),
        (RtpCodecKind::Video, "H264") => Some(MIME_TYPE_H264),
        (RtpCodecKind::Audio, "OPUS") => Some(MIME_TYPE_OPUS),
        _ => None,
    }
}

/// The RTCP feedback the node offers for video: REMB, FIR, NACK, PLI (transport-cc comes with
/// the interceptors).
pub(crate) fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
        .collect()
}

fn to_parameters(kind: RtpCodecKind, mime: &str, c: &OfferedCodec) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: c.clock_rate,
            channels: if kind == RtpCodecKind::Audio { c.channels.max(1) } else { 0 },
            sdp_fmtp_line: c.fmtp.clone(),
            rtcp_feedback: if kind == RtpCodecKind::Video { video_feedback() } else { vec![] },
        },
        payload_type: c.payload_type,
    }
}

/// The one video codec a publisher gets: the first supported codec of the offer's video section
/// in the client's preference order, restricted to `forced` unless it is `NONE`.
///
/// `Ok(None)` when the offer has no video section.
pub(crate) fn choose_video_codec(sdp: &Sdp, forced: VideoCodec) -> Result<Option<RTCRtpCodecParameters>, MediaError> {
    let Some(video) = sdp.section(RtpCodecKind::Video) else {
        return Ok(None);
    };
    let mut supported =
        video.codecs.iter().filter_map(|c| supported_mime(RtpCodecKind::Video, &c.name).map(|mime| (mime, c)));
    let chosen = if forced == VideoCodec::None {
        supported.next()
    } else {
        let wanted = codec_name(forced);
        supported.find(|(_, c)| c.name.eq_ignore_ascii_case(wanted))
    };
    match chosen {
        Some((mime, c)) => Ok(Some(to_parameters(RtpCodecKind::Video, mime, c))),
        None if forced != VideoCodec::None => Err(MediaError::ForcedCodecNotFound(forced)),
        None => Err(MediaError::Sdp("the video section offers none of VP8, VP9, H264".into())),
    }
}

/// The audio codec a publisher gets: Opus. `Ok(None)` when the offer has no audio section.
pub(crate) fn choose_audio_codec(sdp: &Sdp) -> Result<Option<RTCRtpCodecParameters>, MediaError> {
    let Some(audio) = sdp.section(RtpCodecKind::Audio) else {
        return Ok(None);
    };
    audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("opus"))
        .map(|c| Some(to_parameters(RtpCodecKind::Audio, MIME_TYPE_OPUS, c)))
        .ok_or_else(|| MediaError::Sdp("the audio section does not offer Opus".into()))
}

/// The `a=mid` of the first m-section: the bundle tag local candidates are announced with.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .map(str::trim_end)
        .skip_while(|l| !l.starts_with("m="))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("m="))
        .find_map(|(_, l)| l.strip_prefix("a=mid:").map(str::to_owned))
}

/// `sdp` with only the payload types `keep` accepts in its audio and video sections: the `m=`
/// format list and the `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of the others are dropped.
/// `parsed` is `sdp` parsed. A section where `keep` accepts nothing is left whole, for the
/// negotiation to reject as before.
///
/// An offer loses nothing the answer could have used (a peer connection of the node registers
/// only the codecs it forwards), and the webrtc crate's negotiation, which rebuilds a section's
/// codec table once per payload type it lists (quadratic in them), has a few to look at
/// instead of a browser's thirty: it was a third of the node's CPU in a storm of joins.
pub(crate) fn only_codecs(sdp: &str, parsed: &Sdp, keep: impl Fn(RtpCodecKind, &OfferedCodec) -> bool) -> String {
    let kept: Vec<Option<Vec<String>>> = parsed
        .sections
        .iter()
        .map(|section| {
            if section.kind == RtpCodecKind::Unspecified {
                return None;
            }
            let kept: Vec<String> =
                section.codecs.iter().filter(|c| keep(section.kind, c)).map(|c| c.payload_type.to_string()).collect();
            (!kept.is_empty()).then_some(kept)
        })
        .collect();
    if kept.iter().all(Option::is_none) {
        return sdp.to_owned();
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut text = String::with_capacity(sdp.len());
    // The kept payload types of the current section (`None` before the first one, or in a
    // section left whole).
    let mut section: Option<&Vec<String>> = None;
    let mut index = 0;
    for line in sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if let Some(media) = line.strip_prefix("m=") {
            section = kept.get(index).and_then(Option::as_ref);
            index += 1;
            if let Some(kept) = section {
                // `m=<media> <port> <proto> <fmt> …`: the first three fields stay.
                let fields: Vec<&str> = media.split_whitespace().take(3).collect();
                text.push_str("m=");
                text.push_str(&fields.join(" "));
                for pt in kept {
                    text.push(' ');
                    text.push_str(pt);
                }
                text.push_str(eol);
                continue;
            }
        } else if let Some(kept) = section
            && let Some(pt) = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().find_map(|prefix| {
                line.strip_prefix(prefix).map(|rest| rest.split_whitespace().next().unwrap_or_default())
            })
            && pt != "*"
            && !kept.iter().any(|k| k == pt)
        {
            continue;
        }
        text.push_str(line);
        text.push_str(eol);
    }
    text
}

/// `sdp` with `b=AS:<kbps>` announced in every video section (replacing any `b=AS` there), so
/// the peer sends at most that much video. `kbps == 0` returns `sdp` unchanged.
pub(crate) fn with_video_bandwidth(sdp: &str, kbps: u32) -> String {
    if kbps == 0 {
        return sdp.to_owned();
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let bandwidth = format!("b=AS:{kbps}");
    let mut out: Vec<String> = Vec::new();
    let mut in_video = false;
    // Where the b= line goes in the current video section: after m=, i= and c= lines.
    let mut insert_at: Option<usize> = None;
    let flush = |out: &mut Vec<String>, insert_at: &mut Option<usize>| {
        if let Some(i) = insert_at.take() {
            out.insert(i, bandwidth.clone());
        }
    };
    for line in sdp.lines().map(str::trim_end) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            flush(&mut out, &mut insert_at);
            in_video = line.starts_with("m=video");
            out.push(line.to_owned());
            if in_video {
                insert_at = Some(out.len());
            }
            continue;
        }
        if in_video {
            if line.starts_with("b=AS:") {
                continue;
            }
            if let Some(i) = insert_at
                && i == out.len()
                && (line.starts_with("i=") || line.starts_with("c="))
            {
                out.push(line.to_owned());
                insert_at = Some(out.len());
                continue;
            }
        }
        out.push(line.to_owned());
    }
    flush(&mut out, &mut insert_at);
    let mut text = out.join(eol);
    text.push_str(eol);
    text
}
