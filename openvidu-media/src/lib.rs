//! # openvidu-media
//!
//! The media engine of openvidu-rs: a WebRTC SFU built on the [`webrtc`] crate (0.21, the async
//! layer over the sans-IO `rtc` core), and the [`MediaNode`] API a master node drives it with.
//! It receives each published stream once and forwards its RTP to every subscriber without
//! re-encoding. It knows nothing about REST, JSON-RPC or Redis: ids come from `openvidu-core`,
//! SDP and ICE candidates go in and out as text.
//!
//! ## How to start
//!
//! The object tree follows mediasoup's Worker → Router → Producer/Consumer:
//!
//! - [`MediaEngine`]: the UDP ports, settings ([`MediaConfig`]) and the [`MediaEvent`] channel.
//! - [`Router`]: one per session, from [`MediaEngine::create_router`].
//! - [`Publisher`]: one receiving peer connection per published stream
//!   ([`Router::publish`], the client offers).
//! - [`Subscriber`]: one sending peer connection per (subscriber, stream), negotiated either way
//!   ([`Router::subscribe`] when the client offers, [`Router::prepare_subscribe`] +
//!   [`Router::complete_subscribe`] when the node offers).
//!
//! A master uses the id-based [`MediaNode`] trait instead; [`LocalMediaNode`] implements it
//! in-process:
//!
//! ```no_run
//! use openvidu_core::id::{SessionId, StreamId};
//! use openvidu_media::{LocalMediaNode, MediaConfig, MediaEvent, MediaNode, PublishOptions};
//!
//! # async fn run(offer_from_browser: String) -> Result<(), openvidu_media::MediaError> {
//! let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let node = LocalMediaNode::new(MediaConfig::default(), events)?;
//! let session = SessionId::parse("ses_A").unwrap();
//! let stream = StreamId::parse("str_CAM_AbCd_con_X").unwrap();
//! node.create_router(&session).await?;
//! let answer = node.publish(&session, &stream, PublishOptions::new(offer_from_browser)).await?;
//! // send `answer` to the browser, then trickle candidates both ways:
//! while let Some(event) = rx.recv().await {
//!     if let MediaEvent::IceCandidate { endpoint, candidate, .. } = event {
//!         // → `iceCandidate` notification for `endpoint`
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## Media behaviour
//!
//! - Codecs: VP8, VP9, H264 and Opus. A publisher gets exactly one video codec, the first of its
//!   offer (or the session's forced codec: an offer without it fails with
//!   [`MediaError::ForcedCodecNotFound`], RPC code 800). Subscribers get the same codec; their
//!   offer must contain it. RTX is not negotiated: losses are repaired by NACK and
//!   retransmission of the original packets.
//! - Interceptors: a publisher's connection has the NACK generator, receiver reports and the
//!   TWCC receiver, and its packets are forwarded at the end of that chain, in its read pipeline
//!   (`publisher::InlineFanout`). In mux mode the node encrypts and sends subscribers' RTP
//!   itself, answers their NACKs and sends their sender reports (`direct`); in range mode their
//!   connections' NACK responder and sender reports do.
//! - Keyframes ([`KeyframeLimiter`]): a subscriber whose connection comes up, or a recording
//!   that starts, asks the publisher for one at once unless one already asked for is on its
//!   way; recovery requests (subscribers' PLI/FIR, losses, a lagging recorder) are merged to at
//!   most one per [`MediaConfig::keyframe_request_interval`]. In mux mode a subscriber whose
//!   connection comes up less than [`MediaConfig::keyframe_replay_age`] after the last keyframe
//!   is sent that keyframe and what followed it from the track's history instead, and asks for
//!   nothing.
//! - Threads: [`MediaWorker`] runs a [`LocalMediaNode`] on a thread of its own (one
//!   single-threaded runtime for all its peer connections, as a mediasoup worker); the server
//!   and the `openvidu-media-node` binary use it.
//! - Bandwidth: the publisher's limit is announced as `b=AS` in the answer and as REMB.
//! - ICE: host candidates on [`MediaConfig::ice_host_addresses`], trickled both ways; all peers
//!   share one UDP port ([`UdpPorts::Mux`]) or take one each from a range. Remote candidates that
//!   arrive before their endpoint exists, or before its remote description is set, are queued.
//! - Bad input (garbage SDP or candidates) is an error, never a panic.
//!
//! ## Features
//!
//! None of its own. webrtc is built with `runtime-tokio` and `crypto-ring`.
//!
//! ## Differences from OpenVidu's Kurento
//!
//! No transcoding: `OPENVIDU_STREAMS_ALLOW_TRANSCODING`, the MIN bandwidths and the MAX send
//! bandwidth are accepted but cannot be enforced by a forwarding SFU. No filters.
#![deny(missing_docs)]

mod config;
mod direct;
mod endpoint;
mod engine;
mod feedback;
mod forward;
mod keyframe;
mod local;
mod node;
mod pool;
mod publisher;
mod recording;
mod remote;
mod router;
mod sdp;
mod seq;
mod subscriber;
pub mod timer_grid;
mod transport;
mod worker;

pub use config::{MediaConfig, RecordingConfig, UdpPorts};
pub use engine::MediaEngine;
pub use keyframe::{KeyframeLimiter, KeyframeNeed, KeyframeOut};
pub use local::LocalMediaNode;
pub use node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
pub use pool::{MediaNodePool, MemoryPlacement, Placement, placement_order};
pub use publisher::Publisher;
pub use recording::{ComposerPool, RecordedStream, RecordingKind, RecordingReport, RecordingSpec};
pub use remote::{RemoteMediaNode, RemoteOptions, protocol};
pub use router::Router;
pub use subscriber::Subscriber;
pub use worker::MediaWorker;

/// The `tracing` filter a node's binary logs with when `RUST_LOG` is not set: `info`, but the
/// WebRTC stack (the webrtc crate and its `rtc*` crates, which log through `log`, bridged to
/// `tracing`) only from `warn`: at `info` it writes several lines for every peer connection.
pub const DEFAULT_LOG_FILTER: &str = "info,webrtc=warn,rtc=warn,rtc_ice=warn,rtc_dtls=warn,rtc_srtp=warn,\
    rtc_sctp=warn,rtc_interceptor=warn,rtc_datachannel=warn,rtc_stun=warn,rtc_turn=warn,rtc_mdns=warn";

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<LocalMediaNode>();
    is::<MediaEngine>();
    is::<Router>();
    is::<Publisher>();
    is::<Subscriber>();
}
