//! Settings of the `openvidu-media-node` binary: environment variables (named as OpenVidu names
//! them where OpenVidu has them) or the same as command-line flags.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OPENVIDU_SECRET` | required | the secret masters authenticate with (user `OPENVIDUAPP`) |
//! | `MEDIA_NODE_PORT` | `3000` | control API port (OpenVidu PRO's media node port); `0` = any free port |
//! | `MEDIA_NODE_ADDRESS` | `0.0.0.0` | control API bind address (a node must be reachable by its masters; keep it on a trusted network) |
//! | `MEDIA_NODE_ID` | `media_<random>` | the node's id |
//! | `OPENVIDU_WEBRTC_ADDRESSES` | `127.0.0.1` | comma-separated ICE host addresses |
//! | `OPENVIDU_WEBRTC_UDP_PORT` | `0` | the one UDP port all peers share (`0` = any) |
//! | `DOMAIN_OR_PUBLIC_IP` | none | an IP announced in candidates instead of the local one (1:1 NAT) |
//! | `OPENVIDU_STREAMS_VIDEO_{MAX,MIN}_{RECV,SEND}_BANDWIDTH` | 1000/300/1000/300 | kbps, as on the master |
//! | `OPENVIDU_RECORDING` | `false` | keep a COMPOSED encoder warm for fast recording starts |

use std::net::IpAddr;

use clap::{ArgAction, Parser};
use openvidu_core::id::MediaNodeId;
use openvidu_media::{MediaConfig, UdpPorts};

/// A setting with a bad value, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The setting is invalid.
    #[error("{name}: {reason}")]
    Invalid {
        /// The environment variable's name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// Command-line flags and environment variables of `openvidu-media-node`.
#[derive(Clone, Debug, Parser)]
#[command(name = "openvidu-media-node", version, about = "openvidu-rs media node (driven by openvidu-server masters)")]
pub struct Args {
    /// Secret masters authenticate with (user OPENVIDUAPP). Required; [a-zA-Z0-9_-] only.
    #[arg(long, env = "OPENVIDU_SECRET", hide_env_values = true)]
    pub openvidu_secret: String,
    /// Control API port (0 = any free port, printed at start).
    #[arg(long, env = "MEDIA_NODE_PORT", default_value_t = 3000)]
    pub media_node_port: u16,
    /// Control API address to listen on.
    #[arg(long, env = "MEDIA_NODE_ADDRESS", default_value = "0.0.0.0")]
    pub media_node_address: IpAddr,
    /// The node's id (default `media_` + random characters).
    #[arg(long, env = "MEDIA_NODE_ID")]
    pub media_node_id: Option<String>,
    /// Public IP announced in ICE candidates instead of the local address (1:1 NAT).
    #[arg(long, env = "DOMAIN_OR_PUBLIC_IP")]
    pub domain_or_public_ip: Option<String>,
    /// Comma-separated local addresses the media engine binds and offers as ICE host candidates.
    #[arg(long, env = "OPENVIDU_WEBRTC_ADDRESSES", default_value = "127.0.0.1")]
    pub openvidu_webrtc_addresses: String,
    /// The one UDP port every WebRTC peer uses (0 = any free port).
    #[arg(long, env = "OPENVIDU_WEBRTC_UDP_PORT", default_value_t = 0)]
    pub openvidu_webrtc_udp_port: u16,
    /// Max kbps received from a publisher (0 = unconstrained).
    #[arg(long, env = "OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH", default_value_t = 1000)]
    pub openvidu_streams_video_max_recv_bandwidth: u32,
    /// Min kbps received from a publisher.
    #[arg(long, env = "OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH", default_value_t = 300)]
    pub openvidu_streams_video_min_recv_bandwidth: u32,
    /// Max kbps sent to a subscriber.
    #[arg(long, env = "OPENVIDU_STREAMS_VIDEO_MAX_SEND_BANDWIDTH", default_value_t = 1000)]
    pub openvidu_streams_video_max_send_bandwidth: u32,
    /// Min kbps sent to a subscriber.
    #[arg(long, env = "OPENVIDU_STREAMS_VIDEO_MIN_SEND_BANDWIDTH", default_value_t = 300)]
    pub openvidu_streams_video_min_send_bandwidth: u32,
    /// Milliseconds: a subscriber whose connection comes up less than this after the publisher's
    /// last keyframe starts from that keyframe, sent at once from the node's retransmission
    /// history, instead of waiting for a new one (0 = always ask the publisher). An openvidu-rs
    /// setting, not OpenVidu's.
    #[arg(long, env = "OPENVIDU_STREAMS_KEYFRAME_REPLAY_MS", default_value_t = 100)]
    pub openvidu_streams_keyframe_replay_ms: u64,
    /// Keep a COMPOSED recording encoder warm.
    #[arg(long, env = "OPENVIDU_RECORDING", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_recording: bool,
}

/// Validated settings of a media node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The control API secret.
    pub secret: String,
    /// Control API port (0 = any).
    pub port: u16,
    /// Control API address.
    pub address: IpAddr,
    /// The node id, if set.
    pub id: Option<MediaNodeId>,
    /// The media engine's settings.
    pub media: MediaConfig,
}

impl TryFrom<Args> for NodeConfig {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        if !openvidu_core::id::is_valid_custom_id(&a.openvidu_secret) {
            return Err(invalid("OPENVIDU_SECRET", "must be a non-empty string of characters [a-zA-Z0-9_-]"));
        }
        let id = a
            .media_node_id
            .filter(|id| !id.trim().is_empty())
            .map(|id| MediaNodeId::parse(id.trim()).map_err(|e| invalid("MEDIA_NODE_ID", e.to_string())))
            .transpose()?;
        let addresses = a
            .openvidu_webrtc_addresses
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse()
                    .map_err(|_| invalid("OPENVIDU_WEBRTC_ADDRESSES", format!("{p:?} is not an IP address")))
            })
            .collect::<Result<Vec<IpAddr>, _>>()?;
        if addresses.is_empty() {
            return Err(invalid("OPENVIDU_WEBRTC_ADDRESSES", "needs at least one IP address"));
        }
        let announced = match a.domain_or_public_ip.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            // As on the master: a domain name is not an address to announce.
            Some(d) => d.parse().ok(),
        };
        let mut media = MediaConfig::default();
        media.ice_host_addresses = addresses;
        media.announced_address = announced;
        media.udp = UdpPorts::Mux { port: a.openvidu_webrtc_udp_port };
        media.video_max_recv_bandwidth_kbps = a.openvidu_streams_video_max_recv_bandwidth;
        media.video_min_recv_bandwidth_kbps = a.openvidu_streams_video_min_recv_bandwidth;
        media.video_max_send_bandwidth_kbps = a.openvidu_streams_video_max_send_bandwidth;
        media.video_min_send_bandwidth_kbps = a.openvidu_streams_video_min_send_bandwidth;
        media.keyframe_replay_age = std::time::Duration::from_millis(a.openvidu_streams_keyframe_replay_ms);
        if !a.openvidu_recording {
            media.recording.warm_encoders = 0;
        }
        Ok(Self { secret: a.openvidu_secret, port: a.media_node_port, address: a.media_node_address, id, media })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<NodeConfig, ConfigError> {
        let mut argv = vec!["openvidu-media-node"];
        argv.extend_from_slice(args);
        NodeConfig::try_from(Args::try_parse_from(argv).unwrap())
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&["--openvidu-secret", "S"]).unwrap();
        assert_eq!((c.port, c.address.to_string().as_str()), (3000, "0.0.0.0"));
        assert!(c.id.is_none());
        assert_eq!(c.media.udp, UdpPorts::Mux { port: 0 });
        assert_eq!(c.media.recording.warm_encoders, 0);
        let c = parse(&[
            "--openvidu-secret",
            "S",
            "--media-node-port",
            "0",
            "--media-node-id",
            "media_A",
            "--openvidu-webrtc-addresses",
            "127.0.0.1, 10.0.0.2",
            "--openvidu-webrtc-udp-port",
            "40000",
            "--domain-or-public-ip",
            "203.0.113.9",
            "--openvidu-streams-video-max-recv-bandwidth",
            "0",
        ])
        .unwrap();
        assert_eq!(c.port, 0);
        assert_eq!(c.id.unwrap().as_str(), "media_A");
        assert_eq!(c.media.ice_host_addresses.len(), 2);
        assert_eq!(c.media.udp, UdpPorts::Mux { port: 40000 });
        assert_eq!(c.media.announced_address, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(c.media.video_max_recv_bandwidth_kbps, 0);
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse(&["--openvidu-secret", "bad secret"]).unwrap_err();
        assert!(err.to_string().starts_with("OPENVIDU_SECRET"), "{err}");
        let err = parse(&["--openvidu-secret", "S", "--openvidu-webrtc-addresses", "nope"]).unwrap_err();
        assert!(err.to_string().starts_with("OPENVIDU_WEBRTC_ADDRESSES"), "{err}");
        let err = parse(&["--openvidu-secret", "S", "--media-node-id", "a b"]).unwrap_err();
        assert!(err.to_string().starts_with("MEDIA_NODE_ID"), "{err}");
    }
}
