//! Publisher endpoints: one receiving peer connection per published stream, whose tracks are
//! fanned out to subscribers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvidu_core::id::{SessionId, StreamId};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use crate::config::cap_kbps;
use crate::endpoint::{EndpointHandler, EndpointShared, Role, build_peer_connection, close_in_background, lock};
use crate::engine::MediaEngine;
use crate::forward::{Forwarder, Forwarders};
use crate::keyframe::{KeyframeEvent, KeyframeLimiter, KeyframeNeed, KeyframeOut, KeyframeRequests};
use crate::node::{EndpointId, IceCandidate, MediaError, PublishOptions};
use crate::recording::depacketize::starts_keyframe;
use crate::recording::tap::RecordedCodec;
use crate::sdp;
use crate::transport::SendBatch;
use openvidu_core::wire::ice::sdp_ice_ufrag;

mod gap_nack;
mod inline;

pub(crate) use gap_nack::GapNackGenerator;
pub(crate) use inline::InlineFanout;

/// Packets buffered per tap (e.g. a recorder) before a slow one starts losing them.
const FANOUT_CAPACITY: usize = 512;

/// Marks [`TrackFanout::ssrc`] as set (an SSRC may be 0).
const STARTED: u64 = 1 << 32;

/// One published track and everyone who forwards it: the fan-out point of the SFU.
pub(crate) struct TrackFanout {
    pub(crate) kind: RtpCodecKind,
    /// The codec the publisher sends, with its payload type on the publisher's leg.
    pub(crate) codec: RTCRtpCodecParameters,
    /// The subscribers' legs, written by the task that reads the publisher's track.
    pub(crate) forwarders: Forwarders,
    /// Taps that read at their own pace (recorders).
    packets: broadcast::Sender<rtp::Packet>,
    keyframes: Option<KeyframeRequests>,
    /// The codec whose keyframes the keyframe control watches for (`None` for audio).
    keyframe_codec: Option<RecordedCodec>,
    /// How recent a keyframe must be for a subscriber coming up to start from it
    /// ([`MediaConfig::keyframe_replay_age`](crate::MediaConfig::keyframe_replay_age)).
    keyframe_replay_age: Duration,
    /// The publisher's track, once started.
    remote: Mutex<Option<Arc<dyn TrackRemote>>>,
    /// Its SSRC once started, with bit 32 set (0 until then); its packets are forwarded by
    /// [`InlineFanout`] from then on.
    ssrc: AtomicU64,
    received: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl TrackFanout {
    fn new(
        kind: RtpCodecKind,
        codec: RTCRtpCodecParameters,
        keyframe_replay_age: Duration,
    ) -> (Arc<Self>, Option<mpsc::UnboundedReceiver<KeyframeEvent>>) {
        let (keyframes, rx) = if kind == RtpCodecKind::Video {
            let (tx, rx) = KeyframeRequests::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let keyframe_codec = keyframes.as_ref().and_then(|_| RecordedCodec::from_mime(&codec.rtp_codec.mime_type));
        let fanout = Arc::new(Self {
            kind,
            codec,
            // Subscribers send NACKs for video only (`endpoint::interceptors`).
            forwarders: Forwarders::new(kind == RtpCodecKind::Video),
            packets: broadcast::channel(FANOUT_CAPACITY).0,
            keyframe_codec,
            keyframes,
            keyframe_replay_age,
            remote: Mutex::new(None),
            ssrc: AtomicU64::new(0),
            received: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        (fanout, rx)
    }

    /// The taps' sender (to make receivers of every packet from then on, e.g. for a recorder).
    pub(crate) fn sender(&self) -> broadcast::Sender<rtp::Packet> {
        self.packets.clone()
    }

    /// Where keyframe requests for this track go (`None` for audio).
    pub(crate) fn keyframe_sender(&self) -> Option<KeyframeRequests> {
        self.keyframes.clone()
    }

    /// Asks the publisher for a keyframe (merged and rate-limited by [`KeyframeLimiter`]; a
    /// no-op for audio).
    pub(crate) fn request_keyframe(&self, need: KeyframeNeed) {
        if let Some(tx) = &self.keyframes {
            tx.request(need);
        }
    }

    /// Starts `leg`, whose subscriber's connection just came up: with the newest keyframe and
    /// what followed it if that keyframe is recent enough ([`Forwarders::start_from_keyframe`]),
    /// or else with a keyframe request to the publisher (a no-op for audio).
    pub(crate) fn start_leg(&self, leg: &Forwarder) {
        let replayed = self.forwarders.start_from_keyframe(leg, self.keyframe_replay_age, Instant::now());
        if replayed > 0 {
            tracing::debug!(ssrc = leg.ssrc(), packets = replayed, "subscriber starts from the last keyframe");
        } else {
            self.request_keyframe(KeyframeNeed::First);
        }
    }

    /// The publisher's remote track of this kind appeared: start reading it.
    ///
    /// From then on its packets are forwarded by the connection's [`InlineFanout`], in its read
    /// pipeline; the task reading the track forwards what that leaves to the track (the packets
    /// queued on it before).
    pub(crate) async fn attach(self: &Arc<Self>, track: Arc<dyn TrackRemote>, shared: &EndpointShared) {
        let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
        tracing::debug!(session = %shared.session, endpoint = %shared.endpoint,
            kind = %self.kind, ssrc, "publisher track started");
        *lock(&self.remote) = Some(track.clone());
        self.ssrc.store(u64::from(ssrc) | STARTED, Ordering::Release);
        // For whoever subscribed before the track started (and wakes the keyframe control).
        self.request_keyframe(KeyframeNeed::First);
        let fanout = self.clone();
        let task = tokio::spawn(async move {
            let mut batch = SendBatch::default();
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => fanout.on_packet(packet, &mut batch),
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
        lock(&self.tasks).push(task.abort_handle());
    }

    /// Whether packets of `ssrc` are this track's, to be forwarded by [`InlineFanout`].
    fn forwards_inline(&self, ssrc: u32) -> bool {
        self.ssrc.load(Ordering::Acquire) == u64::from(ssrc) | STARTED
    }

    /// One packet of the publisher's track: counted, handed to the taps, watched for a keyframe
    /// and forwarded to every subscriber.
    fn on_packet(&self, packet: rtp::Packet, batch: &mut SendBatch) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if self.packets.receiver_count() > 0 {
            let _ = self.packets.send(packet.clone());
        }
        // Every keyframe's start is kept with the history, for subscribers that come up after it.
        let keyframe_start = self.keyframe_codec.is_some_and(|codec| starts_keyframe(codec, &packet.payload));
        // Told before the keyframe goes out: a request that reaches the control after this one
        // was made by a receiver that may miss this keyframe, and is not answered by it.
        if let Some(k) = &self.keyframes
            && keyframe_start
            && k.watching()
        {
            k.keyframe_passed();
        }
        // A subscriber that lost a packet needs a keyframe to decode again.
        if self.forwarders.forward(packet, keyframe_start, batch) {
            self.request_keyframe(KeyframeNeed::Recovery);
        }
    }

    async fn send_rtcp(&self, packet: Box<dyn rtc::rtcp::Packet>) {
        let track = lock(&self.remote).clone();
        if let Some(track) = track
            && let Err(e) = track.write_rtcp(vec![packet]).await
        {
            tracing::debug!(error = %e, "RTCP to publisher failed");
        }
    }

    fn ssrc(&self) -> Option<u32> {
        let ssrc = self.ssrc.load(Ordering::Acquire);
        (ssrc & STARTED != 0).then_some(ssrc as u32)
    }

    fn abort_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Sends the publisher rate-limited PLIs and periodic REMBs for one video track.
async fn video_control(
    fanout: Arc<TrackFanout>,
    mut requests: mpsc::UnboundedReceiver<KeyframeEvent>,
    min_interval: Duration,
    remb_kbps: u32,
    remb_interval: Duration,
) {
    let mut limiter = KeyframeLimiter::new(min_interval);
    let mut remb = crate::timer_grid::aligned_interval(remb_interval.max(Duration::from_millis(10)));
    let watch = |limiter: &KeyframeLimiter| {
        if let Some(k) = &fanout.keyframes {
            k.set_watching(limiter.is_waiting_for_keyframe());
        }
    };
    loop {
        // Before the publisher's track starts there is nobody to ask: requests wait, and the
        // track's start asks for the first keyframe (`TrackFanout::attach`).
        let deadline = loop {
            let Some(ssrc) = fanout.ssrc() else { break None };
            match limiter.poll(Instant::now()) {
                Some(KeyframeOut::SendRequest) => {
                    watch(&limiter);
                    tracing::debug!(ssrc, "keyframe request to publisher");
                    fanout.send_rtcp(Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })).await;
                }
                Some(KeyframeOut::Timeout(at)) => break Some(at),
                None => break None,
            }
        };
        watch(&limiter);
        let sleep =
            tokio::time::sleep_until(deadline.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std));
        tokio::select! {
            request = requests.recv() => match request {
                Some(KeyframeEvent::Wanted(need)) => limiter.handle_request(need),
                Some(KeyframeEvent::Passed) => limiter.handle_keyframe(),
                None => return,
            },
            () = sleep, if deadline.is_some() => {}
            _ = remb.tick(), if remb_kbps > 0 => {
                if let Some(ssrc) = fanout.ssrc() {
                    fanout
                        .send_rtcp(Box::new(ReceiverEstimatedMaximumBitrate {
                            sender_ssrc: 0,
                            bitrate: remb_kbps as f32 * 1000.0,
                            ssrcs: vec![ssrc],
                        }))
                        .await;
                }
            }
        }
    }
}

/// A published stream: the peer connection receiving it and the fan-out of its tracks.
///
/// A cheap handle; the endpoint closes on [`close`](Self::close) or when the last handle drops.
#[derive(Clone)]
#[must_use = "the publisher endpoint is closed when the last handle is dropped"]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    stream: StreamId,
    pc: Arc<dyn PeerConnection>,
    shared: Arc<EndpointShared>,
    tracks: Vec<Arc<TrackFanout>>,
    tasks: Vec<AbortHandle>,
    closed: AtomicBool,
}

impl Drop for PublisherInner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.shared.mark_closing();
            self.abort_tasks();
            close_in_background(self.pc.clone());
        }
    }
}

impl PublisherInner {
    fn abort_tasks(&self) {
        for task in &self.tasks {
            task.abort();
        }
        for track in &self.tracks {
            track.abort_tasks();
        }
    }
}

impl Publisher {
    /// Negotiates a publisher from the client's offer; returns it with the SDP answer.
    pub(crate) async fn create(
        engine: &MediaEngine,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<(Self, String), MediaError> {
        let desc = sdp::parse(&options.sdp_offer)?;
        if options.has_audio && desc.section(RtpCodecKind::Audio).is_none() {
            return Err(MediaError::Sdp("hasAudio but the offer has no audio section".into()));
        }
        if options.has_video && desc.section(RtpCodecKind::Video).is_none() {
            return Err(MediaError::Sdp("hasVideo but the offer has no video section".into()));
        }
        let video = sdp::choose_video_codec(&desc, options.forced_video_codec)?;
        let audio = sdp::choose_audio_codec(&desc)?;
        // Only the codecs chosen reach the negotiation (`sdp::only_codecs`).
        let chosen = [(RtpCodecKind::Audio, &audio), (RtpCodecKind::Video, &video)];
        let sdp_offer = sdp::only_codecs(&options.sdp_offer, &desc, |kind, codec| {
            chosen.iter().any(|(k, c)| *k == kind && c.as_ref().is_some_and(|c| c.payload_type == codec.payload_type))
        });
        let remote_ufrag = sdp_ice_ufrag(&sdp_offer).map(str::to_owned);
        let offer = RTCSessionDescription::offer(sdp_offer).map_err(|e| MediaError::Sdp(e.to_string()))?;

        let mut codecs = Vec::new();
        let mut tracks = Vec::new();
        let mut control = None;
        for (kind, codec) in [(RtpCodecKind::Audio, audio), (RtpCodecKind::Video, video)] {
            if let Some(codec) = codec {
                let (fanout, keyframes) = TrackFanout::new(kind, codec.clone(), engine.config().keyframe_replay_age);
                if let Some(rx) = keyframes {
                    control = Some((fanout.clone(), rx));
                }
                codecs.push((kind, codec));
                tracks.push(fanout);
            }
        }

        let shared = EndpointShared::new(session.clone(), EndpointId::Publisher(stream.clone()), engine.events());
        let handler =
            Arc::new(EndpointHandler { shared: shared.clone(), role: Role::Publisher { tracks: tracks.clone() } });
        let pc = build_peer_connection(engine, &codecs, handler).await?;
        let config = engine.config();
        let max_kbps = cap_kbps(options.max_recv_bandwidth_kbps, config.video_max_recv_bandwidth_kbps);
        let mut tasks = Vec::new();
        if let Some((fanout, rx)) = control {
            tasks.push(
                tokio::spawn(video_control(
                    fanout,
                    rx,
                    config.keyframe_request_interval,
                    max_kbps,
                    config.remb_interval,
                ))
                .abort_handle(),
            );
        }
        let publisher = Self {
            inner: Arc::new(PublisherInner {
                stream: stream.clone(),
                pc: pc.clone(),
                shared: shared.clone(),
                tracks,
                tasks,
                closed: AtomicBool::new(false),
            }),
        };
        // From here on, dropping `publisher` on error closes the peer connection.
        engine.apply_offer(&pc, offer).await?;
        shared.remote_description_set(pc.as_ref(), remote_ufrag).await;
        let answer_sdp = engine.answer(&pc).await?;
        check_accepted(&answer_sdp, &codecs)?;
        shared.release_candidates(sdp::first_mid(&answer_sdp));
        tracing::info!(%session, %stream, video = ?codecs.iter().find(|c| c.0 == RtpCodecKind::Video)
            .map(|c| c.1.rtp_codec.mime_type.clone()), max_kbps, "stream published");
        Ok((publisher, sdp::with_video_bandwidth(&answer_sdp, max_kbps)))
    }

    /// The published stream.
    pub fn stream(&self) -> &StreamId {
        &self.inner.stream
    }

    /// RTP packets received from the client so far, all tracks together.
    pub fn packets_received(&self) -> u64 {
        self.inner.tracks.iter().map(|t| t.received.load(Ordering::Relaxed)).sum()
    }

    /// Adds a remote ICE candidate from the client.
    pub async fn add_ice_candidate(&self, candidate: IceCandidate) -> Result<(), MediaError> {
        self.inner.shared.add_remote_candidate(self.inner.pc.as_ref(), candidate).await
    }

    /// Closes the endpoint. Subscribers fed by it stop receiving (close them too). Idempotent.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.shared.mark_closing();
        self.inner.abort_tasks();
        if let Err(e) = self.inner.pc.close().await {
            tracing::debug!(error = %e, "closing publisher peer connection");
        }
        tracing::info!(session = %self.inner.shared.session, stream = %self.inner.stream, "publisher closed");
    }

    pub(crate) fn tracks(&self) -> &[Arc<TrackFanout>] {
        &self.inner.tracks
    }
}

/// Fails when the answer rejected a section we meant to receive.
fn check_accepted(answer: &str, codecs: &[(RtpCodecKind, RTCRtpCodecParameters)]) -> Result<(), MediaError> {
    let desc = sdp::parse(answer)?;
    for (kind, codec) in codecs {
        if !desc.offers_mime(*kind, &codec.rtp_codec.mime_type) {
            return Err(MediaError::Sdp(format!(
                "could not negotiate {} for the {kind} section",
                codec.rtp_codec.mime_type
            )));
        }
    }
    Ok(())
}
