//! The media engine's settings.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How the peers of a media node use UDP ports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdpPorts {
    /// All peers share one UDP port per host address, demultiplexed by ICE username and remote
    /// address. `0` binds any free port; read it back with
    /// [`MediaEngine::udp_port`](crate::MediaEngine::udp_port).
    Mux {
        /// The port, or 0 for any.
        port: u16,
    },
    /// Each peer binds its own port from `min..=max`.
    Range {
        /// The lowest port.
        min: u16,
        /// The highest port.
        max: u16,
    },
}

/// Settings of a [`MediaEngine`](crate::MediaEngine) (and so of a
/// [`LocalMediaNode`](crate::LocalMediaNode)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MediaConfig {
    /// Local addresses the peers bind and offer as ICE host candidates. Default: `127.0.0.1`.
    /// The unspecified address (`0.0.0.0`, `::`) stands for every non-loopback interface.
    pub ice_host_addresses: Vec<IpAddr>,
    /// A public address announced in host candidates instead of the local one (1:1 NAT, e.g.
    /// `DOMAIN_OR_PUBLIC_IP`). Default: none.
    pub announced_address: Option<IpAddr>,
    /// UDP port policy. Default: one multiplexed port chosen by the system.
    pub udp: UdpPorts,
    /// `OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH` (kbps, 0 = unconstrained): a cap applied on
    /// top of each publish's own limit. Default 1000.
    pub video_max_recv_bandwidth_kbps: u32,
    /// `OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH` (kbps). Recorded only: a forwarding SFU cannot
    /// raise a publisher's bitrate. Default 300.
    pub video_min_recv_bandwidth_kbps: u32,
    /// `OPENVIDU_STREAMS_VIDEO_MAX_SEND_BANDWIDTH` (kbps). Recorded only: without transcoding the
    /// subscribers get the publisher's bitrate. Default 1000.
    pub video_max_send_bandwidth_kbps: u32,
    /// `OPENVIDU_STREAMS_VIDEO_MIN_SEND_BANDWIDTH` (kbps). Recorded only. Default 300.
    pub video_min_send_bandwidth_kbps: u32,
    /// The shortest time between two keyframe requests (PLI) sent to one publisher to recover
    /// from loss (a subscriber's PLI/FIR, a lost packet); requests in between are merged into
    /// one. A receiver's first keyframe is asked for at once (see [`KeyframeLimiter`](crate::KeyframeLimiter)).
    /// Also how long a request waits for its keyframe before it is sent again. Default 500 ms.
    pub keyframe_request_interval: Duration,
    /// How recent the last keyframe of a published video track must be for a subscriber whose
    /// connection comes up to start from it: the node sends it that keyframe and every packet
    /// after it at once, from the packets it keeps for retransmission, instead of asking the
    /// publisher for a new one and waiting for it (a round trip, then up to a frame interval).
    /// In a crowd of joiners, the keyframe one of them asked for serves those that come up just
    /// after it. The subscriber's first frames arrive together, at most this much behind the
    /// live stream, which its jitter buffer absorbs. Mux mode only (in range mode the
    /// connection's own pipeline sends, and a keyframe is asked for). `Duration::ZERO` turns it
    /// off. Default 100 ms (three frames at 30 fps).
    pub keyframe_replay_age: Duration,
    /// How often a REMB carrying the publisher's bandwidth cap is sent. Default 1 s.
    pub remb_interval: Duration,
    /// Silence on an endpoint's ICE connection before it counts as disconnected. Default 5 s.
    pub ice_disconnected_timeout: Duration,
    /// Time spent disconnected before the endpoint fails ([`MediaEvent::Failed`](crate::MediaEvent::Failed)).
    /// Default 25 s.
    pub ice_failed_timeout: Duration,
    /// How often an endpoint sends an ICE consent check on its connection's selected pair (RFC 7675,
    /// whose default this is): 5 s. A silence is noticed from what the client sends (its own checks,
    /// its RTCP and media), not from these, so this is only what the node costs the client.
    pub ice_consent_interval: Duration,
    /// Recording settings.
    pub recording: RecordingConfig,
}

/// How the node records.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordingConfig {
    /// The `ffmpeg` program the COMPOSED recorder decodes, mixes and encodes with. Default:
    /// `ffmpeg` from `PATH`.
    pub ffmpeg: std::path::PathBuf,
    /// The `ffprobe` program the COMPOSED recorder measures its output with. Default: `ffprobe`
    /// from `PATH`.
    pub ffprobe: std::path::PathBuf,
    /// Encoder processes kept started and waiting, per (resolution, frame rate) in
    /// [`warm_formats`](Self::warm_formats) (plus as many AAC encoders for the audio of the
    /// MP4), so a COMPOSED recording does not wait for FFmpeg to start. Default 1; 0 disables
    /// the warm start.
    pub warm_encoders: usize,
    /// The (width, height, frame rate) formats kept warm. Default: OpenVidu's default
    /// 1280x720 at 25 fps.
    pub warm_formats: Vec<(u32, u32, u32)>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            warm_encoders: 1,
            warm_formats: vec![(1280, 720, 25)],
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            ice_host_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            announced_address: None,
            udp: UdpPorts::Mux { port: 0 },
            video_max_recv_bandwidth_kbps: 1000,
            video_min_recv_bandwidth_kbps: 300,
            video_max_send_bandwidth_kbps: 1000,
            video_min_send_bandwidth_kbps: 300,
            keyframe_request_interval: Duration::from_millis(500),
            keyframe_replay_age: Duration::from_millis(100),
            remb_interval: Duration::from_secs(1),
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(25),
            ice_consent_interval: Duration::from_secs(5),
            recording: RecordingConfig::default(),
        }
    }
}

/// `min` of two bandwidth limits where 0 means unconstrained.
pub(crate) fn cap_kbps(a: u32, b: u32) -> u32 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}
