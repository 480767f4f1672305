//! Settings, named as OpenVidu names them: read from environment variables or the same as
//! command-line flags ([`Args`], clap), then validated once into a [`Config`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use openvidu_core::model::VideoCodec;
use openvidu_core::wire::webhook::EventType;
use thiserror::Error;

/// The version this server reports as `VERSION` (the OpenVidu version it is compatible with).
pub const OPENVIDU_VERSION: &str = "2.20.0";

/// A setting with a bad value, named as the user wrote it.
#[derive(Debug, Error)]
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

/// Who receives `recordingStarted`/`recordingStopped` notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum RecordingNotification {
    /// Nobody.
    None,
    /// Moderators.
    Moderator,
    /// Publishers and moderators (the default).
    #[default]
    PublisherModerator,
    /// Everyone.
    All,
}

impl RecordingNotification {
    /// The setting's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Moderator => "moderator",
            Self::PublisherModerator => "publisher_moderator",
            Self::All => "all",
        }
    }
}

/// Command-line flags and environment variables of `openvidu-server`.
#[derive(Clone, Debug, Parser)]
#[command(name = "openvidu-server", version, about = "openvidu-rs master node (OpenVidu 2.20 compatible)")]
pub struct Args {
    /// Secret of the REST API (user OPENVIDUAPP). Required; [a-zA-Z0-9_-] only.
    #[arg(long, env = "OPENVIDU_SECRET", hide_env_values = true)]
    pub openvidu_secret: String,
    /// Public domain or IP; gives the default public URL.
    #[arg(long, env = "DOMAIN_OR_PUBLIC_IP")]
    pub domain_or_public_ip: Option<String>,
    /// Port to listen on (0 = any free port, printed at start).
    #[arg(long, env = "HTTPS_PORT", default_value_t = 4443)]
    pub https_port: u16,
    /// Address to listen on.
    #[arg(long, env = "SERVER_ADDRESS", default_value = "0.0.0.0")]
    pub server_address: IpAddr,
    /// Serve TLS (true) or plain HTTP behind a load balancer (false).
    #[arg(long, env = "OPENVIDU_HTTPS", default_value_t = true, action = ArgAction::Set)]
    pub openvidu_https: bool,
    /// PEM certificate chain; a self-signed one is generated when absent.
    #[arg(long, env = "OPENVIDU_TLS_CERT")]
    pub openvidu_tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "OPENVIDU_TLS_KEY")]
    pub openvidu_tls_key: Option<PathBuf>,
    /// Public URL clients use; default `https://DOMAIN_OR_PUBLIC_IP[:HTTPS_PORT]`.
    #[arg(long, env = "OPENVIDU_PUBLICURL")]
    pub openvidu_publicurl: Option<String>,
    /// Write call detail records.
    #[arg(long, env = "OPENVIDU_CDR", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_cdr: bool,
    /// Folder of the CDR files.
    #[arg(long, env = "OPENVIDU_CDR_PATH", default_value = "/opt/openvidu/cdr")]
    pub openvidu_cdr_path: PathBuf,
    /// Enable recording.
    #[arg(long, env = "OPENVIDU_RECORDING", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_recording: bool,
    /// Root folder of recordings.
    #[arg(long, env = "OPENVIDU_RECORDING_PATH", default_value = "/opt/openvidu/recordings")]
    pub openvidu_recording_path: PathBuf,
    /// Serve recordings without authentication.
    #[arg(long, env = "OPENVIDU_RECORDING_PUBLIC_ACCESS", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_recording_public_access: bool,
    /// Who is notified of recordings.
    #[arg(long, env = "OPENVIDU_RECORDING_NOTIFICATION", value_enum, default_value = "publisher_moderator")]
    pub openvidu_recording_notification: RecordingNotification,
    /// Root folder of custom layouts.
    #[arg(long, env = "OPENVIDU_RECORDING_CUSTOM_LAYOUT", default_value = "/opt/openvidu/custom-layout")]
    pub openvidu_recording_custom_layout: PathBuf,
    /// Seconds before an unattended recording stops.
    #[arg(long, env = "OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT", default_value_t = 120)]
    pub openvidu_recording_autostop_timeout: u64,
    /// Base URL the composer uses to reach this server.
    #[arg(long, env = "OPENVIDU_RECORDING_COMPOSED_URL", default_value = "")]
    pub openvidu_recording_composed_url: String,
    /// Reported recording version.
    #[arg(long, env = "OPENVIDU_RECORDING_VERSION", default_value = OPENVIDU_VERSION)]
    pub openvidu_recording_version: String,
    /// Post events to a webhook.
    #[arg(long, env = "OPENVIDU_WEBHOOK", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_webhook: bool,
    /// Webhook URL (mandatory when enabled).
    #[arg(long, env = "OPENVIDU_WEBHOOK_ENDPOINT", default_value = "")]
    pub openvidu_webhook_endpoint: String,
    /// JSON array of "Name: value" headers.
    #[arg(long, env = "OPENVIDU_WEBHOOK_HEADERS", default_value = "[]")]
    pub openvidu_webhook_headers: String,
    /// JSON array of event names to post (default: all).
    #[arg(long, env = "OPENVIDU_WEBHOOK_EVENTS")]
    pub openvidu_webhook_events: Option<String>,
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
    /// Forced codec: VP8, VP9, H264 or NONE.
    #[arg(long, env = "OPENVIDU_STREAMS_FORCED_VIDEO_CODEC", default_value = "VP8")]
    pub openvidu_streams_forced_video_codec: String,
    /// Allow transcoding.
    #[arg(long, env = "OPENVIDU_STREAMS_ALLOW_TRANSCODING", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_streams_allow_transcoding: bool,
    /// Seconds between garbage collections of never-joined sessions (0 = off).
    #[arg(long, env = "OPENVIDU_SESSIONS_GARBAGE_INTERVAL", default_value_t = 900)]
    pub openvidu_sessions_garbage_interval: u64,
    /// Minimum age in seconds of a never-joined session before it is collected.
    #[arg(long, env = "OPENVIDU_SESSIONS_GARBAGE_THRESHOLD", default_value_t = 3600)]
    pub openvidu_sessions_garbage_threshold: u64,
    /// Serve the deprecated /api, /config, /cdr, /recordings paths.
    #[arg(long, env = "SUPPORT_DEPRECATED_API", default_value_t = true, action = ArgAction::Set)]
    pub support_deprecated_api: bool,
    /// Serve `POST /demo/token` for the demo page at `/` (development only).
    #[arg(long, env = "OPENVIDU_DEMO", default_value_t = false, action = ArgAction::Set)]
    pub openvidu_demo: bool,
    /// Comma-separated local addresses the media engine binds and offers as ICE host candidates.
    #[arg(long, env = "OPENVIDU_WEBRTC_ADDRESSES", default_value = "127.0.0.1")]
    pub openvidu_webrtc_addresses: String,
    /// The one UDP port every WebRTC peer uses (0 = any free port).
    #[arg(long, env = "OPENVIDU_WEBRTC_UDP_PORT", default_value_t = 0)]
    pub openvidu_webrtc_udp_port: u16,
    /// Milliseconds: a subscriber whose connection comes up less than this after the publisher's
    /// last keyframe starts from that keyframe, sent at once from the node's retransmission
    /// history, instead of waiting for a new one (0 = always ask the publisher). An openvidu-rs
    /// setting, not OpenVidu's.
    #[arg(long, env = "OPENVIDU_STREAMS_KEYFRAME_REPLAY_MS", default_value_t = 100)]
    pub openvidu_streams_keyframe_replay_ms: u64,
    /// Seconds a participant whose socket dropped may reconnect (`connect`) before eviction.
    #[arg(long, env = "OPENVIDU_RECONNECTION_WINDOW", default_value_t = 10)]
    pub openvidu_reconnection_window: u64,
    /// Comma-separated proxy networks (CIDR) whose X-Real-IP / X-Forwarded-For are believed.
    #[arg(long, env = "OPENVIDU_TRUSTED_PROXIES", default_value = "")]
    pub openvidu_trusted_proxies: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "OPENVIDU_MAX_REQUEST_BODY", default_value_t = 1 << 20)]
    pub openvidu_max_request_body: usize,
    /// Redis URL (`redis://host:port/db`) of the state shared by several masters; unset = in memory.
    #[arg(long, env = "OPENVIDU_HA_REDIS_URL", hide_env_values = true)]
    pub openvidu_ha_redis_url: Option<String>,
    /// JSON array of media-node control URLs (`["ws://10.0.0.5:3000"]`); unset or `[]` = the
    /// in-process media node.
    #[arg(long, env = "KMS_URIS", default_value = "[]")]
    pub kms_uris: String,
    /// Seconds a remote media node may stay disconnected before it is declared crashed.
    #[arg(long, env = "OPENVIDU_MEDIA_NODE_GRACE", default_value_t = 3.0)]
    pub openvidu_media_node_grace: f64,
}

/// Webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Where to POST.
    pub endpoint: url::Url,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Which events.
    pub events: Vec<EventType>,
}

/// Validated settings of a master node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// REST secret.
    pub secret: String,
    /// DOMAIN_OR_PUBLIC_IP, if given.
    pub domain_or_public_ip: Option<String>,
    /// Listening port (0 = any).
    pub port: u16,
    /// Listening address.
    pub address: IpAddr,
    /// TLS on.
    pub https: bool,
    /// Certificate and key files, if given.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// OPENVIDU_PUBLICURL, if given.
    pub public_url: Option<String>,
    /// CDR folder when enabled.
    pub cdr_path: Option<PathBuf>,
    /// Recording enabled.
    pub recording: bool,
    /// Recording root.
    pub recording_path: PathBuf,
    /// Recordings downloadable without auth.
    pub recording_public_access: bool,
    /// Recording notification policy.
    pub recording_notification: RecordingNotification,
    /// Custom layouts root.
    pub recording_custom_layout: PathBuf,
    /// Autostop timeout.
    pub recording_autostop_timeout: Duration,
    /// Composer URL override.
    pub recording_composed_url: String,
    /// Reported recording version.
    pub recording_version: String,
    /// Webhook, when enabled.
    pub webhook: Option<WebhookConfig>,
    /// OPENVIDU_STREAMS_VIDEO_{MAX_RECV, MIN_RECV, MAX_SEND, MIN_SEND}_BANDWIDTH.
    pub video_bandwidth: [u32; 4],
    /// Default forced codec.
    pub forced_video_codec: VideoCodec,
    /// Default transcoding.
    pub allow_transcoding: bool,
    /// Garbage collector period (None = off).
    pub garbage_interval: Option<Duration>,
    /// Garbage collector threshold.
    pub garbage_threshold: Duration,
    /// Deprecated path aliases on.
    pub support_deprecated_api: bool,
    /// Body limit.
    pub max_request_body: usize,
    /// Whether the demo token endpoint is on.
    pub demo: bool,
    /// Addresses of the ICE host candidates.
    pub webrtc_addresses: Vec<IpAddr>,
    /// The shared WebRTC UDP port (0 = any).
    pub webrtc_udp_port: u16,
    /// OPENVIDU_STREAMS_KEYFRAME_REPLAY_MS: how recent a keyframe a joining subscriber starts
    /// from ([`MediaConfig::keyframe_replay_age`](openvidu_media::MediaConfig::keyframe_replay_age)).
    pub keyframe_replay_age: Duration,
    /// Reconnection window of participants whose socket dropped.
    pub reconnection_window: Duration,
    /// Proxies whose forwarding headers give the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// OPENVIDU_HA_REDIS_URL: the Redis holding the state shared by several masters (None = in memory).
    pub ha_redis_url: Option<String>,
    /// KMS_URIS: control URLs of remote media nodes (`openvidu-media-node`); empty = in-process.
    pub media_nodes: Vec<String>,
    /// OPENVIDU_MEDIA_NODE_GRACE: how long a remote media node may stay disconnected before it is crashed.
    pub media_node_grace: Duration,
}

/// An IP network in CIDR form (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').map(|(a, p)| (a, Some(p))).unwrap_or((s, None));
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Config {
    /// Defaults for an embedded server with this secret: loopback, any free port, TLS,
    /// recordings and CDR in the system temp folder.
    pub fn embedded(secret: impl Into<String>) -> Self {
        let tmp = std::env::temp_dir();
        Self {
            secret: secret.into(),
            domain_or_public_ip: None,
            port: 0,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https: true,
            tls_files: None,
            public_url: None,
            cdr_path: None,
            recording: false,
            recording_path: tmp.join("openvidu-recordings"),
            recording_public_access: false,
            recording_notification: RecordingNotification::default(),
            recording_custom_layout: tmp.join("openvidu-custom-layout"),
            recording_autostop_timeout: Duration::from_secs(120),
            recording_composed_url: String::new(),
            recording_version: OPENVIDU_VERSION.into(),
            webhook: None,
            video_bandwidth: [1000, 300, 1000, 300],
            forced_video_codec: VideoCodec::Vp8,
            allow_transcoding: false,
            garbage_interval: Some(Duration::from_secs(900)),
            garbage_threshold: Duration::from_secs(3600),
            support_deprecated_api: true,
            max_request_body: 1 << 20,
            keyframe_replay_age: Duration::from_millis(100),
            reconnection_window: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            webrtc_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            webrtc_udp_port: 0,
            demo: false,
            ha_redis_url: None,
            media_nodes: Vec::new(),
            media_node_grace: Duration::from_secs(3),
        }
    }

    /// Checks what cannot be checked by type: the secret's characters, URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() || !openvidu_core::id::is_valid_custom_id(&self.secret) {
            return Err(invalid("OPENVIDU_SECRET", "must be a non-empty string of characters [a-zA-Z0-9_-]"));
        }
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| invalid("OPENVIDU_PUBLICURL", format!("{url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid("OPENVIDU_PUBLICURL", "must start with https:// or http://"));
            }
        }
        for uri in &self.media_nodes {
            let scheme = url::Url::parse(uri).map(|u| u.scheme().to_owned()).unwrap_or_default();
            if !matches!(scheme.as_str(), "ws" | "http") {
                return Err(invalid("KMS_URIS", format!("{uri:?} is not a ws:// or http:// URL of a media node")));
            }
        }
        if let Some(url) = &self.ha_redis_url {
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
            if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix" | "redis+sentinel") {
                return Err(invalid(
                    "OPENVIDU_HA_REDIS_URL",
                    "must be a URL redis://host[:port][/db], rediss://… (TLS) or \
                     redis+sentinel://host:port[,host:port…]/<master name>[/db]",
                ));
            }
            if let Err(e) = crate::store::RedisTarget::parse(url) {
                return Err(invalid("OPENVIDU_HA_REDIS_URL", e));
            }
        }
        Ok(())
    }
}

fn parse_json_strings(name: &'static str, text: &str) -> Result<Vec<String>, ConfigError> {
    serde_json::from_str::<Vec<String>>(text)
        .map_err(|e| invalid(name, format!("must be a JSON array of strings ({e}): {text}")))
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        let tls_files = match (a.openvidu_tls_cert, a.openvidu_tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(invalid("OPENVIDU_TLS_CERT", "OPENVIDU_TLS_CERT and OPENVIDU_TLS_KEY go together"));
            }
        };
        let webhook = if a.openvidu_webhook {
            let endpoint = url::Url::parse(&a.openvidu_webhook_endpoint).map_err(|e| {
                invalid("OPENVIDU_WEBHOOK_ENDPOINT", format!("mandatory URL when OPENVIDU_WEBHOOK=true: {e}"))
            })?;
            let headers = parse_json_strings("OPENVIDU_WEBHOOK_HEADERS", &a.openvidu_webhook_headers)?
                .into_iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| invalid("OPENVIDU_WEBHOOK_HEADERS", format!("{h:?} is not \"Name: value\"")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let events = match &a.openvidu_webhook_events {
                None => EventType::ALL.to_vec(),
                Some(text) => parse_json_strings("OPENVIDU_WEBHOOK_EVENTS", text)?
                    .iter()
                    .map(|e| e.parse().map_err(|r: String| invalid("OPENVIDU_WEBHOOK_EVENTS", r)))
                    .collect::<Result<_, _>>()?,
            };
            Some(WebhookConfig { endpoint, headers, events })
        } else {
            None
        };
        let forced_video_codec = serde_json::from_value(serde_json::Value::String(
            a.openvidu_streams_forced_video_codec.clone(),
        ))
        .map_err(|_| {
            invalid(
                "OPENVIDU_STREAMS_FORCED_VIDEO_CODEC",
                format!("{:?} is not one of VP8, VP9, H264, NONE", a.openvidu_streams_forced_video_codec),
            )
        })?;
        let config = Self {
            secret: a.openvidu_secret,
            domain_or_public_ip: a.domain_or_public_ip.filter(|d| !d.is_empty()),
            port: a.https_port,
            address: a.server_address,
            https: a.openvidu_https,
            tls_files,
            public_url: a.openvidu_publicurl.filter(|u| !u.is_empty()),
            cdr_path: a.openvidu_cdr.then_some(a.openvidu_cdr_path),
            recording: a.openvidu_recording,
            recording_path: a.openvidu_recording_path,
            recording_public_access: a.openvidu_recording_public_access,
            recording_notification: a.openvidu_recording_notification,
            recording_custom_layout: a.openvidu_recording_custom_layout,
            recording_autostop_timeout: Duration::from_secs(a.openvidu_recording_autostop_timeout),
            recording_composed_url: a.openvidu_recording_composed_url,
            recording_version: a.openvidu_recording_version,
            webhook,
            video_bandwidth: [
                a.openvidu_streams_video_max_recv_bandwidth,
                a.openvidu_streams_video_min_recv_bandwidth,
                a.openvidu_streams_video_max_send_bandwidth,
                a.openvidu_streams_video_min_send_bandwidth,
            ],
            forced_video_codec,
            allow_transcoding: a.openvidu_streams_allow_transcoding,
            garbage_interval: (a.openvidu_sessions_garbage_interval > 0)
                .then(|| Duration::from_secs(a.openvidu_sessions_garbage_interval)),
            garbage_threshold: Duration::from_secs(a.openvidu_sessions_garbage_threshold),
            support_deprecated_api: a.support_deprecated_api,
            max_request_body: a.openvidu_max_request_body,
            keyframe_replay_age: Duration::from_millis(a.openvidu_streams_keyframe_replay_ms),
            reconnection_window: Duration::from_secs(a.openvidu_reconnection_window),
            webrtc_addresses: a
                .openvidu_webrtc_addresses
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.trim()
                        .parse()
                        .map_err(|_| invalid("OPENVIDU_WEBRTC_ADDRESSES", format!("{p:?} is not an IP address")))
                })
                .collect::<Result<_, _>>()?,
            webrtc_udp_port: a.openvidu_webrtc_udp_port,
            demo: a.openvidu_demo,
            trusted_proxies: a
                .openvidu_trusted_proxies
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.parse().map_err(|e: String| invalid("OPENVIDU_TRUSTED_PROXIES", e)))
                .collect::<Result<_, _>>()?,
            ha_redis_url: a.openvidu_ha_redis_url.filter(|u| !u.trim().is_empty()),
            media_nodes: serde_json::from_str::<Vec<String>>(if a.kms_uris.trim().is_empty() {
                "[]"
            } else {
                &a.kms_uris
            })
            .map_err(|e| invalid("KMS_URIS", format!("must be a JSON array of URLs: {e}")))?,
            media_node_grace: Duration::try_from_secs_f64(a.openvidu_media_node_grace)
                .map_err(|e| invalid("OPENVIDU_MEDIA_NODE_GRACE", format!("must be a number of seconds: {e}")))?,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
