//! WebRTC without OpenVidu's signalling: the participant's peer connections, media sources and
//! receive statistics for a caller that carries the SDP itself (another SFU's API, a test).
//!
//! There is no trickle ICE: each side waits until its ICE gathering completes, so the SDP it
//! hands out carries every local candidate (and `a=end-of-candidates`), and candidates in the
//! remote SDP are used as they come.
//!
//! ```no_run
//! use openvidu_client::participant::raw::{RawOptions, RawPublisher, RawSubscriber};
//! use openvidu_client::participant::{MediaSource, PublishOptions};
//!
//! # async fn run(signal: impl Fn(&str) -> String) -> Result<(), openvidu_client::participant::raw::RawError> {
//! let source = PublishOptions::new(MediaSource::Synthetic { fps: 30, packet_size: 1000 });
//! let mut publisher = RawPublisher::new(source, RawOptions::new()).await?;
//! let answer = signal(publisher.offer()); // the SFU answers the offer
//! publisher.apply_answer(&answer).await?; // media flows once ICE and DTLS are through
//!
//! let offer = signal("subscribe"); // the SFU offers its stream
//! let subscriber = RawSubscriber::from_offer(&offer, RawOptions::new()).await?;
//! signal(subscriber.answer());
//! println!("{} packets so far", subscriber.stats().packets());
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use thiserror::Error;
use webrtc::peer_connection::RTCSessionDescription;

use super::files::{self, LoadedMedia};
use super::media::{self, Direction, Endpoint, IceLiveness, IceSetup, ReceiveStats, SendTrack};
use super::rpc::{Rpc, lock};
use super::stats::{Kind, TrackStats};
use super::{ParticipantError, PublishOptions};

/// How often the local description is checked while ICE gathering runs.
const GATHERING_POLL: Duration = Duration::from_millis(5);

/// What can go wrong for a [`RawPublisher`] or a [`RawSubscriber`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RawError {
    /// The WebRTC stack failed (peer connection, SDP, tracks), or the media source could not be
    /// read or does not fit the options.
    #[error(transparent)]
    Media(#[from] ParticipantError),
    /// ICE gathering did not complete in time.
    #[error("ICE gathering did not complete within {0:?}")]
    GatheringTimeout(Duration),
    /// [`RawPublisher::apply_answer`] was called a second time.
    #[error("the publisher already applied an answer")]
    AlreadyAnswered,
}

/// Options of [`RawPublisher::new`] and [`RawSubscriber::from_offer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RawOptions {
    /// Local addresses the peer connection binds for ICE. Default (empty): every interface.
    pub ice_addresses: Vec<IpAddr>,
    /// How long to wait for ICE gathering to complete. Default: 5 s.
    pub gathering_timeout: Duration,
    /// The consent checks and ICE timeouts. Default: [`IceLiveness::FAST`].
    pub ice_liveness: IceLiveness,
}

impl Default for RawOptions {
    fn default() -> Self {
        Self { ice_addresses: Vec::new(), gathering_timeout: Duration::from_secs(5), ice_liveness: IceLiveness::FAST }
    }
}

impl RawOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ice_addresses`](Self::ice_addresses).
    pub fn with_ice_addresses(mut self, addresses: Vec<IpAddr>) -> Self {
        self.ice_addresses = addresses;
        self
    }

    /// Sets [`ice_liveness`](Self::ice_liveness).
    pub fn with_ice_liveness(mut self, liveness: IceLiveness) -> Self {
        self.ice_liveness = liveness;
        self
    }
}

/// A new endpoint outside any OpenVidu session. Its local candidates are never released for
/// trickling (they go into the SDP), so its signalling client is never connected or called.
async fn endpoint(
    name: &str,
    options: &RawOptions,
    direction: Direction,
    stats: Option<Arc<ReceiveStats>>,
) -> Result<Endpoint, RawError> {
    let (unused, _) = Rpc::new(String::new(), None, Duration::ZERO);
    let ice = IceSetup { udp_addrs: super::udp_addrs(None, &options.ice_addresses), liveness: options.ice_liveness };
    Ok(Endpoint::new(name.to_owned(), unused, &ice, direction, stats).await?)
}

/// Sets `desc` as the local description and returns it with every gathered candidate, once
/// gathering completes.
async fn set_local_and_gather(
    endpoint: &Endpoint,
    desc: RTCSessionDescription,
    timeout: Duration,
) -> Result<String, RawError> {
    let pc = endpoint.pc();
    pc.set_local_description(desc).await.map_err(ParticipantError::webrtc)?;
    let gathered = async {
        loop {
            if let Some(local) = pc.local_description().await
                && local.sdp.contains("a=end-of-candidates")
            {
                return local.sdp;
            }
            tokio::time::sleep(GATHERING_POLL).await;
        }
    };
    tokio::time::timeout(timeout, gathered).await.map_err(|_| RawError::GatheringTimeout(timeout))
}

/// What a publisher sends once answered.
struct PendingMedia {
    audio: Option<SendTrack>,
    video: Option<SendTrack>,
    files: LoadedMedia,
}

/// A send-only peer connection fed from a [`MediaSource`](super::MediaSource), offered to a
/// remote SFU. Closed when dropped.
#[must_use = "the peer connection closes when the publisher is dropped"]
pub struct RawPublisher {
    endpoint: Endpoint,
    offer: String,
    options: PublishOptions,
    pending: Option<PendingMedia>,
}

impl RawPublisher {
    /// Reads and checks `publish.source`, adds the tracks `publish` asks for, and makes the
    /// offer ([`offer`](Self::offer)) with every local candidate.
    pub async fn new(publish: PublishOptions, options: RawOptions) -> Result<Self, RawError> {
        if !publish.audio && !publish.video {
            return Err(ParticipantError::Config("nothing to publish: audio and video are both off".into()).into());
        }
        let files = files::load(&publish.source, publish.audio, publish.video).await?;
        let endpoint = endpoint("raw-publisher", &options, Direction::Send, None).await?;
        let pc = endpoint.pc();
        let label = "raw";
        let audio = match publish.audio {
            true => Some(media::add_send_track(pc, RtpCodecKind::Audio, label, files.audio.is_some()).await?),
            false => None,
        };
        let video = match publish.video {
            true => Some(media::add_send_track(pc, RtpCodecKind::Video, label, files.video.is_some()).await?),
            false => None,
        };
        let offer = pc.create_offer(None).await.map_err(ParticipantError::webrtc)?;
        let offer = set_local_and_gather(&endpoint, offer, options.gathering_timeout).await?;
        Ok(Self { endpoint, offer, options: publish, pending: Some(PendingMedia { audio, video, files }) })
    }

    /// The SDP offer, candidates included.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// Applies the remote SFU's SDP answer (candidates in it are used) and starts the media.
    pub async fn apply_answer(&mut self, sdp: &str) -> Result<(), RawError> {
        let pending = self.pending.take().ok_or(RawError::AlreadyAnswered)?;
        let answer = RTCSessionDescription::answer(sdp.to_owned()).map_err(ParticipantError::webrtc)?;
        self.endpoint.set_remote(answer).await?;
        let PendingMedia { audio, video, files } = pending;
        media::start_sending(&self.endpoint, audio, video, &self.options.source, files).await?;
        Ok(())
    }

    /// Whether the peer connection is connected (ICE and DTLS through).
    pub fn is_connected(&self) -> bool {
        self.endpoint.is_connected()
    }

    /// Stops the media and closes the peer connection. Idempotent.
    pub async fn close(&self) {
        self.endpoint.close().await;
    }
}

/// What a [`RawSubscriber`] received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawStats {
    /// Whether the peer connection is connected.
    pub connected: bool,
    /// The audio track.
    pub audio: TrackStats,
    /// The video track.
    pub video: TrackStats,
}

impl RawStats {
    /// Packets of both tracks.
    pub fn packets(&self) -> u64 {
        self.audio.packets + self.video.packets
    }
}

/// A receive-only peer connection answering a remote SFU's offer, counting what arrives as a
/// participant's subscription does. Closed when dropped.
#[must_use = "the peer connection closes when the subscriber is dropped"]
pub struct RawSubscriber {
    endpoint: Endpoint,
    answer: String,
    stats: Arc<ReceiveStats>,
}

impl RawSubscriber {
    /// Applies the SFU's SDP offer (candidates in it are used) and makes the answer
    /// ([`answer`](Self::answer)) with every local candidate.
    pub async fn from_offer(sdp: &str, options: RawOptions) -> Result<Self, RawError> {
        let stats = Arc::new(ReceiveStats::new());
        let endpoint = endpoint("raw-subscriber", &options, Direction::Receive, Some(stats.clone())).await?;
        let offer = RTCSessionDescription::offer(sdp.to_owned()).map_err(ParticipantError::webrtc)?;
        endpoint.set_remote(offer).await?;
        let answer = endpoint.pc().create_answer(None).await.map_err(ParticipantError::webrtc)?;
        let answer = set_local_and_gather(&endpoint, answer, options.gathering_timeout).await?;
        Ok(Self { endpoint, answer, stats })
    }

    /// The SDP answer, candidates included.
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// What arrived since the start or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> RawStats {
        RawStats {
            connected: self.endpoint.is_connected(),
            audio: lock(self.stats.counter(Kind::Audio)).snapshot(),
            video: lock(self.stats.counter(Kind::Video)).snapshot(),
        }
    }

    /// Forgets what was counted so far (e.g. after a warm-up).
    pub fn reset_stats(&self) {
        self.stats.reset();
    }

    /// Closes the peer connection. Idempotent.
    pub async fn close(&self) {
        self.endpoint.close().await;
    }
}
