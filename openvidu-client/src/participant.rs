//! A participant bot: joins an OpenVidu 2.20 session with a token, as openvidu-browser 2.20 does,
//! and publishes and subscribes WebRTC media (feature `participant`).
//!
//! It speaks the `/openvidu` WebSocket JSON-RPC signalling of spec §2 (`joinRoom`, `publishVideo`
//! with a client offer, `receiveVideoFrom` with a client offer, trickle ICE through
//! `onIceCandidate`/`iceCandidate`, signals, `ping` every 5 s, `connect` after a socket
//! reconnection) and runs its peer connections with the `webrtc` crate. Media is synthetic (VP8
//! and Opus RTP payloads stamped with their send time, so that receivers measure the forwarding
//! latency) or real, decodable media from files ([`MediaSource::Files`]: VP8 frames from an IVF
//! file, Opus packets from an Ogg file); nothing is encoded or decoded. That makes it cheap
//! enough to run a hundred bots in one process, for tests and load benchmarks.
//!
//! ## How to start
//!
//! [`Participant::join`] with a token (from [`Session::create_connection`](crate::Session)),
//! then [`publish`](Participant::publish), [`subscribe_all`](Participant::subscribe_all), read
//! [`next_event`](Participant::next_event) and [`stats`](Participant::stats), and
//! [`leave`](Participant::leave):
//!
//! ```no_run
//! use openvidu_client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
//!
//! # async fn run(token: &str) -> Result<(), openvidu_client::participant::ParticipantError> {
//! let bot = Participant::join(token, JoinOptions::new().with_client_data("bot-1")).await?;
//! let stream = bot.publish(PublishOptions::new(MediaSource::Synthetic { fps: 15, packet_size: 500 })).await?;
//! println!("{} publishes {stream}", bot.connection_id());
//! bot.subscribe_all().await?;
//! while let Some(event) = bot.next_event().await {
//!     println!("{event:?}");
//!     for s in bot.stats() {
//!         println!("{}: {} video packets, p50 latency {:?}", s.stream_id, s.video.packets,
//!             s.video.latency_percentile(0.5));
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## Media reconnection
//!
//! As openvidu-browser 2.20 (spec §2.4.6), a peer connection whose ICE fails is replaced by a
//! new one for the same stream with `reconnectStream`, and the server may push a new connection
//! to a subscription (`forciblyReconnectSubscriber`, e.g. after its media node died and the
//! publisher republished on another one). Each success comes as
//! [`ParticipantEvent::MediaReconnected`]; the stream ids and the receive statistics go on.
//!
//! - The publisher: when its connection is `Failed`, or `Disconnected` for 0.5 s, it republishes
//!   the same stream (same tracks and media source, new offer, `reconnectStream{stream,
//!   sdpString}`), again every second while that fails, until it works, the stream is
//!   unpublished or the participant leaves. [`Participant::reconnect_publisher`] does it on
//!   demand.
//! - A subscription: when its connection is `Failed`, or `Disconnected` for 2 s, it
//!   renegotiates as [`JoinOptions::negotiation`] says (client offer:
//!   `reconnectStream{stream, sdpOffer}`; server offer: `prepareReceiveVideoFrom{sender,
//!   reconnect: true}` then `reconnectStream{stream, sdpString}`), every second while that
//!   fails, until it works or the stream goes away. [`Participant::reconnect_subscription`]
//!   does it on demand.
//! - `forciblyReconnectSubscriber{connectionId, streamId, sdpOffer}`: the subscription answers
//!   the server's offer with `reconnectStream{stream, sdpString, forciblyReconnect: true}`; a
//!   push takes over from a retrying reconnection, and of several pushes arriving during a
//!   reconnection the last one wins.
//! - A connection (the publisher's or a subscription's) that is not connected 10 s after it was
//!   made counts as broken too, and is reconnected as above: a peer that never answers its
//!   checks would otherwise be noticed only when ICE gives up, 25 s later.
//! - ICE notices a silent peer fast: consent checks every 500 ms, `Disconnected` after 1.5 s
//!   without a packet from it, `Failed` 5 s later (the webrtc crate's defaults: 2 s, 5 s and
//!   25 s more). A dead media node is thus noticed in about 2 s by its publishers and 3.5 s
//!   by its subscribers (when the server does not push them a new connection first).
//!
//! ## Where it differs from openvidu-browser
//!
//! - A dropped socket is re-bound with `connect` ([`Participant::reconnect_socket`], and
//!   automatically when the socket fails); the peer connections do not depend on it, so they
//!   are not renegotiated after it (openvidu-browser reconnects its broken streams then).
//! - ICE timeouts are shorter (above), and the publisher waits 0.5 s, a subscription 2 s (not
//!   4 s) for a `Disconnected` connection to come back before reconnecting it. A reconnection
//!   that fails is retried every second (openvidu-browser tries once per ICE failure), and one
//!   that does not connect within 10 s is reconnected (openvidu-browser waits for ICE to fail).
//! - Filters, `videoData` and `streamPropertyChanged` requests are not sent.
//! - One stream per participant, as in openvidu-browser.
//!
//! ## Errors, panics
//!
//! Calls return [`ParticipantError`]; a refusal by the server carries its JSON-RPC code
//! ([`ParticipantError::rpc_code`]). Nothing the server sends can make the participant panic:
//! unreadable frames and notifications are logged and skipped.

mod arrival;
mod error;
mod events;
mod files;
mod media;
pub mod raw;
mod reconnect;
mod rpc;
mod rtcp;
mod stats;
mod synthetic;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openvidu_core::id::{ConnectionId, SessionId, StreamId, Token, TypeOfVideo};
use openvidu_core::model::OpenViduRole;
use openvidu_core::wire::rpc::{
    ConnectParams, ForceDisconnectParams, ForceUnpublishParams, JoinRoomParams, PrepareReceiveVideoFromParams,
    PublishVideoParams, ReceiveVideoFromParams, SendMessageParams, SignalMessage, UnsubscribeFromVideoParams,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

pub use error::ParticipantError;
pub use events::{ParticipantEvent, RemoteParticipant, StreamInfo};
pub use media::IceLiveness;
pub use openvidu_core::model::EndReason;
pub use stats::{StreamStats, TrackStats, percentile};

use media::{Direction, Endpoint, IceSetup, ReceiveStats};
use rpc::{Inbound, Rpc, lock};

/// How often the participant pings (openvidu-browser's interval).
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Events kept for [`Participant::next_event`] before the oldest are dropped.
const MAX_QUEUED_EVENTS: usize = 4096;
/// The pauses before each attempt to re-establish a failed socket: at once, then sooner than
/// once a second at first (a load balancer may still send the first attempts to a master that
/// just died), 8.25 s in all (the server keeps a participant for its reconnection window, 10 s by
/// default).
const AUTO_RECONNECT_PAUSES_MS: [u64; 11] = [0, 100, 150, 250, 500, 750, 1000, 1000, 1500, 1500, 1500];
/// The pause between two attempts of a media reconnection.
const MEDIA_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long the publisher's connection may stay `Disconnected` before it is republished.
const PUBLISHER_DISCONNECTED_GRACE: Duration = Duration::from_millis(500);
/// How long a subscription's connection may stay `Disconnected` before it is renegotiated.
const SUBSCRIBER_DISCONNECTED_GRACE: Duration = Duration::from_secs(2);
/// How long a connection may take to connect (ICE and DTLS) before it counts as broken. Without
/// it, a connection whose peer never answers its checks waits for ICE to fail, 25 s or more.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How often a watchdog looks again at a connection that stays broken.
const WATCHDOG_POLL: Duration = Duration::from_millis(250);
/// Server candidates kept for a pushed reconnection until its peer connection exists.
const MAX_BUFFERED_CANDIDATES: usize = 64;

/// How subscriptions are negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Negotiation {
    /// As openvidu-browser 2.20: the client offers when the server says `mediaServer: "kurento"`,
    /// the server offers (`prepareReceiveVideoFrom`) when it says `"mediasoup"`.
    #[default]
    Auto,
    /// The client offers (`receiveVideoFrom{sdpOffer}`).
    ClientOffers,
    /// The server offers (`prepareReceiveVideoFrom`, then `receiveVideoFrom{sdpAnswer}`).
    ServerOffers,
}

/// Options of [`Participant::join`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JoinOptions {
    /// The client data other participants see in the metadata (`joinRoom`'s `metadata`).
    /// Default: empty.
    pub client_data: String,
    /// The platform reported to the server (and in the REST Connection object). Default:
    /// `openvidu-rs participant`.
    pub platform: String,
    /// Trust any certificate of a `wss://` server (development only). Default: false.
    pub accept_invalid_certs: bool,
    /// PEM certificates trusted in addition to the system's roots (e.g. a self-signed server's
    /// certificate). Default: none.
    pub root_certificate_pem: Option<Vec<u8>>,
    /// Local addresses the peer connections bind for ICE. Default (empty): `127.0.0.1` when the
    /// token's host is a loopback address or `localhost`, else every non-loopback interface.
    pub ice_addresses: Vec<IpAddr>,
    /// How long a request waits for its answer. Default: 10 s (openvidu-browser's timeout).
    pub request_timeout: Duration,
    /// Who offers in subscriptions. Default: [`Negotiation::Auto`].
    pub negotiation: Negotiation,
    /// The peer connections' consent checks and ICE timeouts. Default: [`IceLiveness::FAST`].
    pub ice_liveness: IceLiveness,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            client_data: String::new(),
            platform: "openvidu-rs participant".into(),
            accept_invalid_certs: false,
            root_certificate_pem: None,
            ice_addresses: Vec::new(),
            request_timeout: Duration::from_secs(10),
            negotiation: Negotiation::Auto,
            ice_liveness: IceLiveness::FAST,
        }
    }
}

impl JoinOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`client_data`](Self::client_data).
    pub fn with_client_data(mut self, client_data: impl Into<String>) -> Self {
        self.client_data = client_data.into();
        self
    }

    /// Sets [`platform`](Self::platform).
    pub fn with_platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = platform.into();
        self
    }

    /// Adds a trusted root certificate (PEM), see [`root_certificate_pem`](Self::root_certificate_pem).
    pub fn with_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate_pem = Some(pem.into());
        self
    }

    /// Sets [`accept_invalid_certs`](Self::accept_invalid_certs).
    pub fn with_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Sets [`negotiation`](Self::negotiation).
    pub fn with_negotiation(mut self, negotiation: Negotiation) -> Self {
        self.negotiation = negotiation;
        self
    }

    /// Sets [`ice_liveness`](Self::ice_liveness).
    pub fn with_ice_liveness(mut self, liveness: IceLiveness) -> Self {
        self.ice_liveness = liveness;
        self
    }
}

/// Where published media comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaSource {
    /// Generated RTP: one VP8 packet of `packet_size` bytes per frame at `fps` (keyframes for
    /// two seconds, then one per second) and 50 Opus packets per second, each stamped with its
    /// send time.
    Synthetic {
        /// Video frames (= packets) per second.
        fps: u32,
        /// Video payload size in bytes (clamped to 23–1150).
        packet_size: usize,
    },
    /// Real VP8 frames from an IVF file, paced by its timebase and looped (audio, if
    /// published, is synthetic). These packets carry no send time.
    IvfFile(PathBuf),
    /// Real media from files, each track paced in real time by the file's own timing and
    /// looped: what recordings can decode. These packets carry no send time.
    ///
    /// A track that [`PublishOptions`] requests must have its file here, else
    /// [`publish`](Participant::publish) fails with [`ParticipantError::MediaSource`]; the file
    /// of a track not requested is not read. Files are read and checked when publishing.
    ///
    /// Such files come from ffmpeg, e.g. (`scripts/test-media` makes both):
    /// `ffmpeg -f lavfi -i testsrc=size=320x240:rate=15 -t 10 -c:v libvpx -g 15 video.ivf` and
    /// `ffmpeg -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -ac 2 -c:a libopus audio.ogg`.
    Files {
        /// An IVF file of VP8 frames, one per timebase tick (as [`MediaSource::IvfFile`]).
        video: Option<PathBuf>,
        /// An Ogg Opus file (RFC 7845): its audio packets are sent one per RTP packet, each
        /// after the previous one's duration (read from the packet's TOC; 20 ms for ffmpeg's
        /// libopus).
        audio: Option<PathBuf>,
    },
}

/// Options of [`Participant::publish`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Publish an audio track (Opus). Default: true.
    pub audio: bool,
    /// Publish a video track (VP8). Default: true.
    pub video: bool,
    /// The media.
    pub source: MediaSource,
    /// The announced kind of video. Default: [`TypeOfVideo::Camera`].
    pub type_of_video: TypeOfVideo,
}

impl PublishOptions {
    /// Audio and video from `source`.
    pub fn new(source: MediaSource) -> Self {
        Self { audio: true, video: true, source, type_of_video: TypeOfVideo::Camera }
    }

    /// Sets [`audio`](Self::audio).
    pub fn with_audio(mut self, audio: bool) -> Self {
        self.audio = audio;
        self
    }

    /// Sets [`video`](Self::video).
    pub fn with_video(mut self, video: bool) -> Self {
        self.video = video;
        self
    }
}

/// The events not yet read by [`Participant::next_event`].
struct EventQueue {
    queue: Mutex<VecDeque<ParticipantEvent>>,
    closed: AtomicBool,
    dropped: AtomicU64,
    notify: Notify,
}

impl EventQueue {
    fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
        }
    }

    fn push(&self, event: ParticipantEvent) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        {
            let mut q = lock(&self.queue);
            if q.len() == MAX_QUEUED_EVENTS {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(event);
        }
        self.notify.notify_waiters();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn pop(&self) -> Option<ParticipantEvent> {
        lock(&self.queue).pop_front()
    }
}

struct LocalPublisher {
    endpoint: Endpoint,
    /// Known once `publishVideo` answered.
    stream_id: Option<StreamId>,
    /// What was published, to publish it again on a media reconnection.
    options: PublishOptions,
    media: files::LoadedMedia,
    /// The new peer connection while a media reconnection negotiates (the server's ICE
    /// candidates go to it).
    pending: Option<Endpoint>,
}

impl LocalPublisher {
    fn endpoints(self) -> impl Iterator<Item = Endpoint> {
        std::iter::once(self.endpoint).chain(self.pending)
    }
}

struct Subscription {
    endpoint: Endpoint,
    stream_id: StreamId,
    stats: Arc<ReceiveStats>,
    /// The tracks asked for in client offers.
    audio: bool,
    video: bool,
    /// The new peer connection while a media reconnection negotiates (the server's ICE
    /// candidates go to it).
    pending: Option<Endpoint>,
    /// The offer of the last `forciblyReconnectSubscriber` not taken up yet.
    forced_offer: Option<String>,
    /// The server's candidates since that push, until its peer connection exists.
    forced_candidates: Option<Vec<events::RemoteCandidate>>,
    reconnection: Arc<SubscriptionReconnection>,
}

impl Subscription {
    fn endpoints(self) -> impl Iterator<Item = Endpoint> {
        std::iter::once(self.endpoint).chain(self.pending)
    }
}

/// A subscription's media reconnections; also tells a subscription from a later one to the
/// same publisher.
#[derive(Default)]
struct SubscriptionReconnection {
    /// One reconnection at a time.
    lock: tokio::sync::Mutex<()>,
    /// Whether a retry loop after an ICE failure runs.
    retrying: AtomicBool,
}

/// Whose peer connection a watchdog watches.
#[derive(Clone)]
enum Watched {
    Publisher,
    Subscription { publisher: ConnectionId, reconnection: Arc<SubscriptionReconnection> },
}

/// How a subscription renegotiates.
enum Renegotiation {
    /// Answers the offer of a `forciblyReconnectSubscriber`.
    Forced(String),
    /// `reconnectStream{stream, sdpOffer}`.
    ClientOffers,
    /// `prepareReceiveVideoFrom{reconnect: true}`, then `reconnectStream{stream, sdpString}`.
    ServerOffers,
}

/// A copy of loaded media (cheap: the contents are shared).
fn copy_media(media: &files::LoadedMedia) -> files::LoadedMedia {
    files::LoadedMedia { video: media.video.clone(), audio: media.audio.clone() }
}

#[derive(Default)]
struct State {
    remotes: BTreeMap<ConnectionId, RemoteParticipant>,
    publisher: Option<LocalPublisher>,
    /// By publisher connection id.
    subscriptions: HashMap<ConnectionId, Subscription>,
    subscribe_all: bool,
}

struct Inner {
    rpc: Rpc,
    me: ConnectionId,
    session: SessionId,
    rpc_session_id: String,
    role: Option<OpenViduRole>,
    metadata: String,
    media_server: String,
    negotiation: Negotiation,
    ice: IceSetup,
    state: Mutex<State>,
    events: EventQueue,
    closed: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
    reconnecting: tokio::sync::Mutex<()>,
    /// One publisher reconnection at a time.
    republishing: tokio::sync::Mutex<()>,
    /// Whether the publisher's retry loop after an ICE failure runs.
    publisher_retrying: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.rpc.close();
        self.events.close();
        // The endpoints in `state` close their peer connections when dropped.
    }
}

/// A participant in an OpenVidu session: its signalling socket, its published stream and its
/// subscriptions. A cheap handle (clones share the participant).
///
/// Dropping the last handle without [`leave`](Self::leave) closes the socket and the peer
/// connections; the server then evicts the participant after its reconnection window, with
/// reason `networkDisconnect`.
#[derive(Clone)]
#[must_use = "the participant's socket and media close when the last handle is dropped"]
pub struct Participant {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("session", &self.inner.session)
            .field("connection_id", &self.inner.me)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// What `joinRoom` answered.
struct Joined {
    me: ConnectionId,
    rpc_session_id: String,
    role: Option<OpenViduRole>,
    metadata: String,
    media_server: String,
    remotes: Vec<RemoteParticipant>,
}

fn parse_join(result: &Map<String, Value>) -> Result<Joined, String> {
    let me =
        result.get("id").and_then(Value::as_str).and_then(|s| ConnectionId::parse(s).ok()).ok_or("no connection id")?;
    let rpc_session_id = result.get("sessionId").and_then(Value::as_str).ok_or("no sessionId")?.to_owned();
    Ok(Joined {
        me,
        rpc_session_id,
        role: result.get("role").and_then(|r| serde_json::from_value(r.clone()).ok()),
        metadata: result.get("metadata").and_then(Value::as_str).unwrap_or_default().to_owned(),
        media_server: result.get("mediaServer").and_then(Value::as_str).unwrap_or("kurento").to_owned(),
        remotes: result
            .get("value")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(events::parse_participant).collect())
            .unwrap_or_default(),
    })
}

/// The local addresses to bind for ICE.
fn udp_addrs(host: Option<url::Host<&str>>, configured: &[IpAddr]) -> Vec<SocketAddr> {
    let ips = if configured.is_empty() {
        let loopback = match host {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        vec![IpAddr::V4(if loopback { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED })]
    } else {
        configured.to_vec()
    };
    ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect()
}

fn text_field(result: &Map<String, Value>, key: &str, method: &str) -> Result<String, ParticipantError> {
    result.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| ParticipantError::Protocol {
        method: method.to_owned(),
        message: format!("no {key} in the result"),
    })
}

fn type_of_video_name(t: TypeOfVideo) -> &'static str {
    match t {
        TypeOfVideo::Camera => "CAMERA",
        TypeOfVideo::Screen => "SCREEN",
        TypeOfVideo::Custom => "CUSTOM",
        TypeOfVideo::Ipcam => "IPCAM",
    }
}

impl Participant {
    /// Joins the session of `token` (`ws[s]://host[:port]?sessionId=…&token=…`, as the REST API
    /// hands it out): opens `/openvidu` on the token's host, sends `joinRoom` with the full token,
    /// and keeps pinging every 5 s.
    pub async fn join(token: &str, options: JoinOptions) -> Result<Self, ParticipantError> {
        let parsed = Token::parse(token).map_err(|e| ParticipantError::InvalidToken(e.to_string()))?;
        let base = parsed.ws_url.trim_end_matches('/');
        let url = url::Url::parse(base).map_err(|e| ParticipantError::InvalidToken(format!("{base}: {e}")))?;
        let tls = match url.scheme() {
            "wss" => Some(tls::client_config(options.root_certificate_pem.as_deref(), options.accept_invalid_certs)?),
            "ws" => None,
            other => return Err(ParticipantError::InvalidToken(format!("unsupported scheme {other}"))),
        };
        let udp_addrs = udp_addrs(url.host(), &options.ice_addresses);
        let ws_url = format!("{base}/openvidu?sessionId={}", parsed.session_id);
        let (rpc, inbound) = Rpc::new(ws_url, tls, options.request_timeout);
        rpc.replace_socket().await?;
        let params = JoinRoomParams {
            token: Some(token.to_owned()),
            session: parsed.session_id.to_string(),
            platform: Some(options.platform.clone()),
            metadata: Some(options.client_data.clone()),
            secret: Some(String::new()),
            recorder: Some(false),
        };
        let joined = match rpc.call_with("joinRoom", &params).await {
            Ok(result) => {
                parse_join(&result).map_err(|message| ParticipantError::Protocol { method: "joinRoom".into(), message })
            }
            Err(e) => Err(e),
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                rpc.close();
                return Err(e);
            }
        };
        let negotiation = match (options.negotiation, joined.media_server.as_str()) {
            (Negotiation::Auto, "mediasoup") => Negotiation::ServerOffers,
            (Negotiation::Auto, _) => Negotiation::ClientOffers,
            (n, _) => n,
        };
        let state = State {
            remotes: joined.remotes.into_iter().map(|r| (r.connection_id.clone(), r)).collect(),
            ..State::default()
        };
        let inner = Arc::new(Inner {
            rpc,
            me: joined.me,
            session: parsed.session_id,
            rpc_session_id: joined.rpc_session_id,
            role: joined.role,
            metadata: joined.metadata,
            media_server: joined.media_server,
            negotiation,
            ice: IceSetup { udp_addrs, liveness: options.ice_liveness },
            state: Mutex::new(state),
            events: EventQueue::new(),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            reconnecting: tokio::sync::Mutex::new(()),
            republishing: tokio::sync::Mutex::new(()),
            publisher_retrying: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        let events = tokio::spawn(event_loop(weak.clone(), inbound));
        let ping = tokio::spawn(ping_loop(weak));
        lock(&inner.tasks).extend([events.abort_handle(), ping.abort_handle()]);
        tracing::debug!(session = %inner.session, connection_id = %inner.me, "joined");
        Ok(Self { inner })
    }

    /// This participant's connection id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.inner.me
    }

    /// The session.
    pub fn session_id(&self) -> &SessionId {
        &self.inner.session
    }

    /// The JSON-RPC session id (`sessionId` of the `joinRoom` result), which `connect` presents
    /// after a socket reconnection.
    pub fn rpc_session_id(&self) -> &str {
        &self.inner.rpc_session_id
    }

    /// The role the token gave (`None` for connections joined with the secret).
    pub fn role(&self) -> Option<OpenViduRole> {
        self.inner.role
    }

    /// This participant's full metadata as the server reported it.
    pub fn metadata(&self) -> &str {
        &self.inner.metadata
    }

    /// The `mediaServer` the server announced (`kurento` for OpenVidu CE and openvidu-rs).
    pub fn media_server(&self) -> &str {
        &self.inner.media_server
    }

    /// True after [`leave`](Self::leave), an eviction, or a socket that could not be
    /// re-established.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The other participants and their streams, as last notified.
    pub fn remote_participants(&self) -> Vec<RemoteParticipant> {
        lock(&self.inner.state).remotes.values().cloned().collect()
    }

    /// The streams the other participants publish.
    pub fn remote_streams(&self) -> Vec<StreamInfo> {
        lock(&self.inner.state).remotes.values().flat_map(|r| r.streams.iter().cloned()).collect()
    }

    /// The stream this participant publishes, once `publishVideo` answered.
    pub fn published_stream(&self) -> Option<StreamId> {
        lock(&self.inner.state).publisher.as_ref().and_then(|p| p.stream_id.clone())
    }

    /// The streams this participant subscribes to (negotiated or being negotiated).
    pub fn subscriptions(&self) -> Vec<StreamId> {
        let mut s: Vec<StreamId> =
            lock(&self.inner.state).subscriptions.values().map(|s| s.stream_id.clone()).collect();
        s.sort();
        s
    }

    /// Whether this participant's publisher peer connection is connected.
    pub fn is_publisher_connected(&self) -> bool {
        lock(&self.inner.state).publisher.as_ref().is_some_and(|p| p.endpoint.is_connected())
    }

    /// The next event, in the order the server sent them; `None` once the participant is closed
    /// and every event was read. At most 4096 unread events are kept (the oldest go first).
    pub async fn next_event(&self) -> Option<ParticipantEvent> {
        loop {
            let notified = self.inner.events.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(event) = self.inner.events.pop() {
                return Some(event);
            }
            if self.inner.events.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&self) -> Option<ParticipantEvent> {
        self.inner.events.pop()
    }

    /// Receive statistics of every subscription, by publisher.
    pub fn stats(&self) -> Vec<StreamStats> {
        let state = lock(&self.inner.state);
        let mut all: Vec<StreamStats> = state
            .subscriptions
            .iter()
            .map(|(publisher, s)| {
                s.stats.snapshot(StreamStats {
                    stream_id: s.stream_id.clone(),
                    publisher: publisher.clone(),
                    connected: s.endpoint.is_connected(),
                    connected_at: s.endpoint.connected_at(),
                    audio: TrackStats::default(),
                    video: TrackStats::default(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.publisher.cmp(&b.publisher));
        all
    }

    /// Restarts every subscription's counters and latency samples from zero.
    pub fn reset_stats(&self) {
        for s in lock(&self.inner.state).subscriptions.values() {
            s.stats.reset();
        }
    }

    fn check_open(&self) -> Result<(), ParticipantError> {
        if self.is_closed() { Err(ParticipantError::Closed) } else { Ok(()) }
    }

    async fn call_with<P: serde::Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Map<String, Value>, ParticipantError> {
        self.check_open()?;
        self.inner.rpc.call_with(method, params).await
    }

    /// Publishes a stream: a send-only peer connection with a VP8 and/or Opus track fed from
    /// `options.source`, negotiated with `publishVideo` (this client offers). Returns the stream
    /// id. The source's files are read and checked first: a missing, unreadable or malformed
    /// file (or a requested track without one) fails with [`ParticipantError::MediaSource`].
    pub async fn publish(&self, options: PublishOptions) -> Result<StreamId, ParticipantError> {
        self.check_open()?;
        if !options.audio && !options.video {
            return Err(ParticipantError::Config("nothing to publish: audio and video are both off".into()));
        }
        let files = files::load(&options.source, options.audio, options.video).await?;
        if let Some(p) = &lock(&self.inner.state).publisher {
            return Err(ParticipantError::AlreadyPublishing(p.stream_id.clone()));
        }
        let endpoint =
            Endpoint::new(self.inner.me.to_string(), self.inner.rpc.clone(), &self.inner.ice, Direction::Send, None)
                .await?;
        {
            let mut state = lock(&self.inner.state);
            if let Some(p) = &state.publisher {
                return Err(ParticipantError::AlreadyPublishing(p.stream_id.clone()));
            }
            state.publisher = Some(LocalPublisher {
                endpoint: endpoint.clone(),
                stream_id: None,
                options: options.clone(),
                media: copy_media(&files),
                pending: None,
            });
        }
        match self.negotiate_publisher(&endpoint, &options, files, None).await {
            Ok(stream) => {
                if let Some(p) = lock(&self.inner.state).publisher.as_mut().filter(|p| p.endpoint.same(&endpoint)) {
                    p.stream_id = Some(stream.clone());
                }
                self.watch_media(&endpoint, Watched::Publisher);
                tracing::debug!(connection_id = %self.inner.me, stream_id = %stream, "published");
                Ok(stream)
            }
            Err(e) => {
                {
                    let mut state = lock(&self.inner.state);
                    if state.publisher.as_ref().is_some_and(|p| p.endpoint.same(&endpoint)) {
                        state.publisher = None;
                    }
                }
                endpoint.close().await;
                Err(e)
            }
        }
    }

    /// Negotiates a publisher's peer connection: with `publishVideo`, or with `reconnectStream`
    /// when `republish` names the stream published already.
    async fn negotiate_publisher(
        &self,
        endpoint: &Endpoint,
        options: &PublishOptions,
        files: files::LoadedMedia,
        republish: Option<&StreamId>,
    ) -> Result<StreamId, ParticipantError> {
        let pc = endpoint.pc();
        let label = self.inner.me.to_string();

        let audio = match options.audio {
            true => Some(media::add_send_track(pc, RtpCodecKind::Audio, &label, files.audio.is_some()).await?),
            false => None,
        };
        let video = match options.video {
            true => Some(media::add_send_track(pc, RtpCodecKind::Video, &label, files.video.is_some()).await?),
            false => None,
        };
        let offer = pc.create_offer(None).await.map_err(ParticipantError::webrtc)?;
        let sdp = offer.sdp.clone();
        pc.set_local_description(offer).await.map_err(ParticipantError::webrtc)?;
        if let Some(stream) = republish {
            let params = json!({"stream": stream, "sdpString": sdp});
            let result = self.call_with("reconnectStream", &params).await?;
            let answer = text_field(&result, "sdpAnswer", "reconnectStream")?;
            endpoint.set_remote(RTCSessionDescription::answer(answer).map_err(ParticipantError::webrtc)?).await?;
            endpoint.release_candidates(&sdp);
            media::start_sending(endpoint, audio, video, &options.source, files).await?;
            return Ok(stream.clone());
        }
        let (frame_rate, width, height) = match (&options.source, &files.video) {
            (_, Some((_, info))) => {
                let fps = (1.0 / info.period.as_secs_f64()).round() as i64;
                (fps, info.width, info.height)
            }
            (MediaSource::Synthetic { fps, .. }, _) => (i64::from(*fps), synthetic::WIDTH, synthetic::HEIGHT),
            _ => (-1, synthetic::WIDTH, synthetic::HEIGHT),
        };
        let params = PublishVideoParams {
            sdp_offer: sdp.clone(),
            do_loopback: false,
            has_audio: options.audio,
            has_video: options.video,
            audio_active: Some(options.audio),
            video_active: Some(options.video),
            type_of_video: Some(if options.video { type_of_video_name(options.type_of_video) } else { "" }.into()),
            frame_rate: options.video.then_some(frame_rate),
            video_dimensions: options.video.then(|| json!({"width": width, "height": height}).to_string()),
            filter: None,
        };
        let result = self.call_with("publishVideo", &params).await?;
        let answer = text_field(&result, "sdpAnswer", "publishVideo")?;
        let stream =
            result.get("id").and_then(Value::as_str).and_then(|s| StreamId::parse(s).ok()).ok_or_else(|| {
                ParticipantError::Protocol { method: "publishVideo".into(), message: "no stream id".into() }
            })?;
        endpoint.set_remote(RTCSessionDescription::answer(answer).map_err(ParticipantError::webrtc)?).await?;
        endpoint.release_candidates(&sdp);
        media::start_sending(endpoint, audio, video, &options.source, files).await?;
        Ok(stream)
    }

    /// Stops publishing (`unpublishVideo`) and closes the publisher's peer connection.
    pub async fn unpublish(&self) -> Result<(), ParticipantError> {
        self.check_open()?;
        if lock(&self.inner.state).publisher.as_ref().and_then(|p| p.stream_id.as_ref()).is_none() {
            return Err(ParticipantError::NotPublishing);
        }
        self.call_with("unpublishVideo", &json!({})).await?;
        let publisher = lock(&self.inner.state).publisher.take();
        for endpoint in publisher.into_iter().flat_map(LocalPublisher::endpoints) {
            endpoint.close().await;
        }
        Ok(())
    }

    /// Subscribes to a stream of another participant: a receive-only peer connection negotiated
    /// with `receiveVideoFrom` (who offers follows [`JoinOptions::negotiation`]). Returns once
    /// negotiated; media flows when ICE and DTLS are through ([`StreamStats::connected`]).
    /// Subscribing again to a stream already subscribed does nothing.
    pub async fn subscribe(&self, stream_id: &StreamId) -> Result<(), ParticipantError> {
        self.check_open()?;
        let owner = stream_id.owner().ok_or_else(|| ParticipantError::StreamNotFound(stream_id.clone()))?;
        if owner == self.inner.me {
            return Err(ParticipantError::Config("a participant cannot subscribe to its own stream".into()));
        }
        let (audio, video) = {
            let state = lock(&self.inner.state);
            if state.subscriptions.get(&owner).is_some_and(|s| &s.stream_id == stream_id) {
                return Ok(());
            }
            // A stream not notified yet: offer both kinds and let the server decide.
            state
                .remotes
                .get(&owner)
                .and_then(|r| r.streams.iter().find(|s| &s.id == stream_id))
                .map(|s| (s.has_audio, s.has_video))
                .unwrap_or((true, true))
        };
        let stats = Arc::new(ReceiveStats::new());
        let endpoint = Endpoint::new(
            owner.to_string(),
            self.inner.rpc.clone(),
            &self.inner.ice,
            Direction::Receive,
            Some(stats.clone()),
        )
        .await?;
        // A reconnection pushed while the first negotiation runs waits for it.
        let reconnection = Arc::new(SubscriptionReconnection::default());
        let _negotiating = reconnection.lock.try_lock();
        let previous = {
            let mut state = lock(&self.inner.state);
            if state.subscriptions.get(&owner).is_some_and(|s| &s.stream_id == stream_id) {
                return Ok(());
            }
            let sub = Subscription {
                endpoint: endpoint.clone(),
                stream_id: stream_id.clone(),
                stats,
                audio,
                video,
                pending: None,
                forced_offer: None,
                forced_candidates: None,
                reconnection: reconnection.clone(),
            };
            state.subscriptions.insert(owner.clone(), sub)
        };
        for previous in previous.into_iter().flat_map(Subscription::endpoints) {
            previous.close().await;
        }
        let result = match self.inner.negotiation {
            Negotiation::ServerOffers => self.answer_subscription(&endpoint, stream_id).await,
            _ => self.offer_subscription(&endpoint, stream_id, audio, video).await,
        };
        if let Err(e) = result {
            {
                let mut state = lock(&self.inner.state);
                if state.subscriptions.get(&owner).is_some_and(|s| s.endpoint.same(&endpoint)) {
                    state.subscriptions.remove(&owner);
                }
            }
            endpoint.close().await;
            return Err(e);
        }
        self.watch_media(&endpoint, Watched::Subscription { publisher: owner, reconnection: reconnection.clone() });
        tracing::debug!(connection_id = %self.inner.me, %stream_id, "subscribed");
        Ok(())
    }

    async fn offer_subscription(
        &self,
        endpoint: &Endpoint,
        stream_id: &StreamId,
        audio: bool,
        video: bool,
    ) -> Result<(), ParticipantError> {
        self.offer_to_receive(endpoint, audio, video, "receiveVideoFrom", |sdp| {
            json!(ReceiveVideoFromParams { sender: stream_id.to_string(), sdp_offer: Some(sdp), sdp_answer: None })
        })
        .await
    }

    /// A receive-only offer from `endpoint` sent with `method` (its params made from the SDP by
    /// `params`), whose result carries the `sdpAnswer`.
    async fn offer_to_receive(
        &self,
        endpoint: &Endpoint,
        audio: bool,
        video: bool,
        method: &str,
        params: impl FnOnce(String) -> Value,
    ) -> Result<(), ParticipantError> {
        let pc = endpoint.pc();
        media::add_receive_transceivers(pc, audio, video).await?;
        let offer = pc.create_offer(None).await.map_err(ParticipantError::webrtc)?;
        let sdp = offer.sdp.clone();
        pc.set_local_description(offer).await.map_err(ParticipantError::webrtc)?;
        let result = self.call_with(method, &params(sdp.clone())).await?;
        let answer = text_field(&result, "sdpAnswer", method)?;
        endpoint.set_remote(RTCSessionDescription::answer(answer).map_err(ParticipantError::webrtc)?).await?;
        endpoint.release_candidates(&sdp);
        Ok(())
    }

    async fn answer_subscription(&self, endpoint: &Endpoint, stream_id: &StreamId) -> Result<(), ParticipantError> {
        let pc = endpoint.pc();
        let params = PrepareReceiveVideoFromParams { sender: stream_id.to_string(), reconnect: Some(false) };
        let result = self.call_with("prepareReceiveVideoFrom", &params).await?;
        let offer = text_field(&result, "sdpOffer", "prepareReceiveVideoFrom")?;
        endpoint.set_remote(RTCSessionDescription::offer(offer).map_err(ParticipantError::webrtc)?).await?;
        let answer = pc.create_answer(None).await.map_err(ParticipantError::webrtc)?;
        let sdp = answer.sdp.clone();
        pc.set_local_description(answer).await.map_err(ParticipantError::webrtc)?;
        let params =
            ReceiveVideoFromParams { sender: stream_id.to_string(), sdp_offer: None, sdp_answer: Some(sdp.clone()) };
        self.call_with("receiveVideoFrom", &params).await?;
        endpoint.release_candidates(&sdp);
        Ok(())
    }

    /// Subscribes to every stream published now and, from now on, to each stream published
    /// later (on `participantPublished`; failures of those come as
    /// [`ParticipantEvent::SubscriptionFailed`]). Returns the streams subscribed now.
    pub async fn subscribe_all(&self) -> Result<Vec<StreamId>, ParticipantError> {
        self.check_open()?;
        let streams: Vec<StreamId> = {
            let mut state = lock(&self.inner.state);
            state.subscribe_all = true;
            state.remotes.values().flat_map(|r| r.streams.iter().map(|s| s.id.clone())).collect()
        };
        let results = futures_util::future::join_all(streams.iter().map(|s| self.subscribe(s))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(streams)
    }

    /// Stops receiving the stream of `publisher` (`unsubscribeFromVideo` names the publisher's
    /// connection, not the stream).
    pub async fn unsubscribe(&self, publisher: &ConnectionId) -> Result<(), ParticipantError> {
        self.check_open()?;
        let sub = lock(&self.inner.state).subscriptions.remove(publisher);
        let sub = sub.ok_or_else(|| ParticipantError::NotSubscribed(publisher.clone()))?;
        let result =
            self.call_with("unsubscribeFromVideo", &UnsubscribeFromVideoParams { sender: publisher.to_string() }).await;
        for endpoint in sub.endpoints() {
            endpoint.close().await;
        }
        result.map(drop)
    }

    /// Sends a signal as openvidu-browser does: type `signal:<signal_type>` (or `signal` when
    /// empty), to these connections, or to everyone (this participant included) when `to` is
    /// empty.
    pub async fn signal(&self, to: &[ConnectionId], signal_type: &str, data: &str) -> Result<(), ParticipantError> {
        let message = SignalMessage {
            to: Some(to.iter().map(|c| Some(c.to_string())).collect()),
            data: Some(data.to_owned()),
            signal_type: Some(if signal_type.is_empty() { "signal".into() } else { format!("signal:{signal_type}") }),
        };
        let message = serde_json::to_string(&message)
            .map_err(|e| ParticipantError::Protocol { method: "sendMessage".into(), message: e.to_string() })?;
        self.call_with("sendMessage", &SendMessageParams { message }).await.map(drop)
    }

    /// Evicts another participant (`forceDisconnect`; needs the MODERATOR role).
    pub async fn force_disconnect(&self, connection_id: &ConnectionId) -> Result<(), ParticipantError> {
        let params = ForceDisconnectParams { connection_id: connection_id.to_string() };
        self.call_with("forceDisconnect", &params).await.map(drop)
    }

    /// Stops another participant's stream (`forceUnpublish`; needs the MODERATOR role).
    pub async fn force_unpublish(&self, stream_id: &StreamId) -> Result<(), ParticipantError> {
        let params = ForceUnpublishParams { stream_id: stream_id.to_string() };
        self.call_with("forceUnpublish", &params).await.map(drop)
    }

    /// Leaves the session (`leaveRoom`), closes the peer connections and the socket. The
    /// participant is closed afterwards, even if the server did not answer.
    pub async fn leave(&self) -> Result<(), ParticipantError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(ParticipantError::Closed);
        }
        let result = self.inner.rpc.call("leaveRoom", Some(json!({}))).await;
        self.shut_down().await;
        result.map(drop)
    }

    /// Drops the WebSocket and opens a new one, re-binding it to this participant with
    /// `connect{sessionId: rpc_session_id}`, as openvidu-browser does after a network change.
    /// The connection id and the media stay the same. Fails with code 40007 when the server no
    /// longer knows the participant.
    pub async fn reconnect_socket(&self) -> Result<(), ParticipantError> {
        self.check_open()?;
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        self.inner.rpc.replace_socket().await?;
        let params = ConnectParams { session_id: self.inner.rpc_session_id.clone() };
        self.inner.rpc.call_with("connect", &params).await?;
        // The first ping on the new socket announces the interval again.
        let rpc = self.inner.rpc.clone();
        if rpc.take_ping_interval_due() {
            tokio::spawn(async move {
                if rpc.call("ping", Some(json!({"interval": PING_INTERVAL.as_millis() as u64}))).await.is_err() {
                    rpc.set_ping_interval_due();
                }
            });
        }
        tracing::debug!(connection_id = %self.inner.me, "socket re-bound");
        Ok(())
    }

    /// Closes everything: media, socket, event queue.
    async fn shut_down(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let (publisher, subscriptions) = {
            let mut state = lock(&self.inner.state);
            state.subscribe_all = false;
            (state.publisher.take(), state.subscriptions.drain().map(|(_, s)| s).collect::<Vec<_>>())
        };
        for endpoint in publisher.into_iter().flat_map(LocalPublisher::endpoints) {
            endpoint.close().await;
        }
        for endpoint in subscriptions.into_iter().flat_map(Subscription::endpoints) {
            endpoint.close().await;
        }
        self.inner.rpc.close();
        self.inner.events.close();
    }

    async fn handle(&self, message: Inbound) {
        match message {
            Inbound::SocketLost { generation } => {
                if !self.is_closed() && generation == self.inner.rpc.generation() {
                    tracing::info!(connection_id = %self.inner.me, "signalling socket lost; reconnecting");
                    tokio::spawn(self.clone().auto_reconnect());
                }
            }
            Inbound::Notification { method, params } => {
                if method == "iceCandidate" {
                    self.route_candidate(&params).await;
                    return;
                }
                if method == "forciblyReconnectSubscriber" {
                    self.on_forced_reconnect(&params);
                    return;
                }
                let Some(event) = events::parse_event(&method, &params) else {
                    tracing::debug!(%method, "unreadable notification skipped");
                    return;
                };
                let evicted_me = matches!(&event, ParticipantEvent::ParticipantEvicted { connection_id, .. }
                    if connection_id == &self.inner.me);
                if evicted_me {
                    if !self.is_closed() {
                        self.inner.events.push(event);
                        self.shut_down().await;
                    }
                    return;
                }
                self.apply(&event).await;
                self.inner.events.push(event);
            }
        }
    }

    async fn route_candidate(&self, params: &Map<String, Value>) {
        let Some((owner, candidate)) = events::parse_ice_candidate(params) else {
            tracing::debug!("unreadable iceCandidate skipped");
            return;
        };
        let endpoint = {
            let mut state = lock(&self.inner.state);
            if owner == self.inner.me {
                state.publisher.as_ref().map(|p| p.pending.as_ref().unwrap_or(&p.endpoint).clone())
            } else {
                match state.subscriptions.get_mut(&owner) {
                    Some(Subscription { forced_candidates: Some(buffer), .. }) => {
                        // For the peer connection of a pushed reconnection, not created yet.
                        if buffer.len() < MAX_BUFFERED_CANDIDATES {
                            buffer.push(candidate);
                        }
                        return;
                    }
                    Some(s) => Some(s.pending.as_ref().unwrap_or(&s.endpoint).clone()),
                    None => None,
                }
            }
        };
        match endpoint {
            Some(e) => e.add_remote_candidate(candidate).await,
            None => tracing::debug!(%owner, "ICE candidate for no endpoint"),
        }
    }

    /// Updates the local view of the session for an event.
    async fn apply(&self, event: &ParticipantEvent) {
        let me = &self.inner.me;
        let closing = match event {
            ParticipantEvent::ParticipantJoined { connection_id, created_at, metadata } => {
                let remote = RemoteParticipant {
                    connection_id: connection_id.clone(),
                    created_at: *created_at,
                    metadata: metadata.clone(),
                    streams: Vec::new(),
                };
                lock(&self.inner.state).remotes.insert(connection_id.clone(), remote);
                Vec::new()
            }
            ParticipantEvent::ParticipantLeft { connection_id, .. }
            | ParticipantEvent::ParticipantEvicted { connection_id, .. } => {
                let mut state = lock(&self.inner.state);
                state.remotes.remove(connection_id);
                state.subscriptions.remove(connection_id).into_iter().flat_map(Subscription::endpoints).collect()
            }
            ParticipantEvent::StreamPublished { connection_id, stream } => {
                let auto = {
                    let mut state = lock(&self.inner.state);
                    let remote = state.remotes.entry(connection_id.clone()).or_insert_with(|| RemoteParticipant {
                        connection_id: connection_id.clone(),
                        created_at: stream.created_at,
                        metadata: String::new(),
                        streams: Vec::new(),
                    });
                    remote.streams.retain(|s| s.id != stream.id);
                    remote.streams.push(stream.clone());
                    state.subscribe_all && connection_id != me
                };
                if auto {
                    self.subscribe_in_background(stream.id.clone());
                }
                Vec::new()
            }
            ParticipantEvent::StreamUnpublished { connection_id, .. } if connection_id == me => {
                lock(&self.inner.state).publisher.take().into_iter().flat_map(LocalPublisher::endpoints).collect()
            }
            ParticipantEvent::StreamUnpublished { connection_id, .. } => {
                let mut state = lock(&self.inner.state);
                if let Some(r) = state.remotes.get_mut(connection_id) {
                    r.streams.clear();
                }
                state.subscriptions.remove(connection_id).into_iter().flat_map(Subscription::endpoints).collect()
            }
            ParticipantEvent::StreamPropertyChanged { connection_id, stream_id, property, new_value, .. } => {
                let mut state = lock(&self.inner.state);
                if let Some(s) =
                    state.remotes.get_mut(connection_id).and_then(|r| r.streams.iter_mut().find(|s| &s.id == stream_id))
                {
                    events::apply_property(s, property, new_value);
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        for endpoint in closing {
            endpoint.close().await;
        }
    }

    fn subscribe_in_background(&self, stream_id: StreamId) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            let participant = Participant { inner };
            if let Err(e) = participant.subscribe(&stream_id).await
                && !participant.is_closed()
            {
                tracing::debug!(%stream_id, error = %e, "automatic subscription failed");
                participant.inner.events.push(ParticipantEvent::SubscriptionFailed { stream_id, error: e.to_string() });
            }
        });
    }

    async fn auto_reconnect(self) {
        let mut last_error = String::new();
        for pause in AUTO_RECONNECT_PAUSES_MS {
            if self.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
            match self.reconnect_socket().await {
                Ok(()) => {
                    self.inner.events.push(ParticipantEvent::Reconnected);
                    return;
                }
                Err(e) => {
                    let fatal = e.rpc_code().is_some();
                    last_error = e.to_string();
                    if fatal {
                        break;
                    }
                }
            }
        }
        if !self.is_closed() {
            tracing::info!(connection_id = %self.inner.me, error = %last_error, "the socket could not be re-established");
            self.inner.events.push(ParticipantEvent::Disconnected { error: last_error });
            self.shut_down().await;
        }
    }
}

async fn event_loop(weak: Weak<Inner>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(message) = inbound.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        Participant { inner }.handle(message).await;
    }
}

async fn ping_loop(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(PING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rpc = match weak.upgrade() {
            Some(inner) if !inner.closed.load(Ordering::Acquire) => inner.rpc.clone(),
            _ => return,
        };
        let first = rpc.take_ping_interval_due();
        let params = first.then(|| json!({"interval": PING_INTERVAL.as_millis() as u64}));
        if let Err(e) = rpc.call("ping", params).await {
            if first {
                rpc.set_ping_interval_due();
            }
            tracing::debug!(error = %e, "ping failed");
        }
    }
}

/// Compile-time promises: a participant can be shared across tasks and threads.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync_clone::<Participant>();
    send_sync::<ParticipantError>();
    send_sync::<ParticipantEvent>();
}
