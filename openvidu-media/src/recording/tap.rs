//! A recorder's view of a published stream: a receiver of every RTP packet of each track (the
//! same fan-out the subscribers read) and a way to ask the publisher for a keyframe.

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::broadcast;

use super::RecordedStream;
use crate::keyframe::{KeyframeNeed, KeyframeRequests};
use crate::publisher::Publisher;

/// A codec a recorder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordedCodec {
    Vp8,
    Vp9,
    H264,
    Opus,
}

impl RecordedCodec {
    /// From a negotiated MIME type (`video/VP8`, `audio/opus`, …; case-insensitive).
    pub(crate) fn from_mime(mime: &str) -> Option<Self> {
        let sub = mime.rsplit('/').next()?.to_ascii_lowercase();
        match sub.as_str() {
            "vp8" => Some(Self::Vp8),
            "vp9" => Some(Self::Vp9),
            "h264" => Some(Self::H264),
            "opus" => Some(Self::Opus),
            _ => None,
        }
    }

    /// Whether it is a video codec.
    pub(crate) fn is_video(self) -> bool {
        !matches!(self, Self::Opus)
    }
}

/// One track of a recorded stream.
pub(crate) struct TrackTap {
    /// The track's codec.
    pub(crate) codec: RecordedCodec,
    /// RTP clock rate (90000 for video, 48000 for Opus).
    pub(crate) clock_rate: u32,
    /// Every packet the publisher sends from now on. A lagging receiver loses the oldest
    /// packets (`RecvError::Lagged`) and must wait for the next keyframe.
    pub(crate) packets: broadcast::Receiver<rtp::Packet>,
    keyframes: Option<KeyframeRequests>,
}

impl TrackTap {
    /// A tap on `sender`'s packets from now on; keyframe requests go to `keyframes`. Tests
    /// build taps on their own channels with this.
    pub(crate) fn new(
        codec: RecordedCodec,
        clock_rate: u32,
        sender: broadcast::Sender<rtp::Packet>,
        keyframes: Option<KeyframeRequests>,
    ) -> Self {
        Self { codec, clock_rate, packets: sender.subscribe(), keyframes }
    }

    /// Asks the publisher for a keyframe (rate-limited by the node; a no-op for audio).
    pub(crate) fn request_keyframe(&self, need: KeyframeNeed) {
        if let Some(tx) = &self.keyframes {
            tx.request(need);
        }
    }
}

/// A stream to record: its metadata and a tap on each of its tracks that a recorder knows.
pub(crate) struct StreamTap {
    pub(crate) info: RecordedStream,
    pub(crate) audio: Option<TrackTap>,
    pub(crate) video: Option<TrackTap>,
}

impl StreamTap {
    /// Taps `publisher`'s tracks. Tracks of codecs no recorder knows are left out.
    pub(crate) fn new(info: RecordedStream, publisher: &Publisher) -> Self {
        let mut tap = Self { info, audio: None, video: None };
        for fanout in publisher.tracks() {
            let Some(codec) = RecordedCodec::from_mime(&fanout.codec.rtp_codec.mime_type) else {
                tracing::warn!(stream = %tap.info.stream, mime = %fanout.codec.rtp_codec.mime_type,
                    "track codec cannot be recorded");
                continue;
            };
            let track =
                TrackTap::new(codec, fanout.codec.rtp_codec.clock_rate, fanout.sender(), fanout.keyframe_sender());
            match fanout.kind {
                RtpCodecKind::Video => tap.video = Some(track),
                _ => tap.audio = Some(track),
            }
        }
        tap
    }
}
