//! The media engine: the UDP transport, the settings and the event channel every router and
//! endpoint of a media node shares.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use openvidu_core::id::SessionId;
use rtc::crypto::{self, SignatureScheme};
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use tokio::sync::mpsc::UnboundedSender;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use crate::config::MediaConfig;
use crate::node::{MediaError, MediaEvent};
use crate::router::Router;
use crate::transport::Transport;

/// The root of a media node's object tree: `MediaEngine` → [`Router`] (one per session) →
/// [`Publisher`](crate::Publisher) / [`Subscriber`](crate::Subscriber) endpoints.
///
/// A cheap handle. It owns the UDP ports: in mux mode they stay bound while any handle, router
/// or endpoint is alive.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: MediaConfig,
    transport: Arc<Transport>,
    events: UnboundedSender<MediaEvent>,
    certificate: RTCCertificate,
    /// Where SDP negotiation runs when set (see [`MediaEngine::negotiate`]).
    negotiation: OnceLock<tokio::runtime::Handle>,
}

impl MediaEngine {
    /// Binds the UDP ports of `config`; endpoints report on `events`.
    ///
    /// Must be called inside a tokio runtime (multi-threaded is best: every peer connection
    /// runs its own driver task).
    pub fn new(config: MediaConfig, events: UnboundedSender<MediaEvent>) -> Result<Self, MediaError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MediaError::Config("the media engine must be created inside a tokio runtime".into()));
        }
        let transport = Arc::new(Transport::new(&config.ice_host_addresses, config.announced_address, &config.udp)?);
        let certificate = dtls_certificate()?;
        Ok(Self {
            inner: Arc::new(EngineInner { config, transport, events, certificate, negotiation: OnceLock::new() }),
        })
    }

    /// A new, empty router for `session`.
    pub fn create_router(&self, session: SessionId) -> Router {
        Router::new(self.clone(), session)
    }

    /// The settings.
    pub fn config(&self) -> &MediaConfig {
        &self.inner.config
    }

    /// The shared UDP port, in mux mode.
    pub fn udp_port(&self) -> Option<u16> {
        self.inner.transport.mux_port()
    }

    pub(crate) fn transport(&self) -> &Arc<Transport> {
        &self.inner.transport
    }

    pub(crate) fn events(&self) -> UnboundedSender<MediaEvent> {
        self.inner.events.clone()
    }

    /// Runs SDP negotiation, and the subscribers' peer connections, on `runtime` from now on
    /// (once; later calls are ignored). A [`MediaWorker`](crate::MediaWorker) gives its caller's
    /// runtime. Setting a description is CPU work under the connection's lock, with no I/O; a
    /// subscriber's connection (its ICE checks, DTLS handshake, RTCP and timers) is work the
    /// fan-out does not wait for, since in mux mode the fan-out encrypts and sends the
    /// subscriber's RTP itself (`crate::direct`). A storm of joins then spreads that work over the runtime's threads instead
    /// of queueing it on the media thread, ahead of the packets of the connections already up.
    /// Publishers' connections stay where they are built: their driver reads the packets the
    /// fan-out forwards.
    pub fn set_negotiation_runtime(&self, runtime: tokio::runtime::Handle) {
        let _ = self.inner.negotiation.set(runtime);
    }

    /// The runtime of [`set_negotiation_runtime`](Self::set_negotiation_runtime), if set.
    pub(crate) fn negotiation_runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.inner.negotiation.get()
    }

    /// Runs `work` (negotiation) on the negotiation runtime if there is one, else here.
    pub(crate) async fn negotiate<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, MediaError>> + Send + 'static,
    ) -> Result<T, MediaError> {
        match self.inner.negotiation.get() {
            Some(runtime) => runtime
                .spawn(work)
                .await
                .map_err(|e| MediaError::Internal(format!("SDP negotiation task ended: {e}")))?,
            None => work.await,
        }
    }

    /// Sets the client's offer as `pc`'s remote description (on the negotiation runtime).
    pub(crate) async fn apply_offer(
        &self,
        pc: &Arc<dyn PeerConnection>,
        offer: RTCSessionDescription,
    ) -> Result<(), MediaError> {
        let pc = pc.clone();
        self.negotiate(
            async move { pc.set_remote_description(offer).await.map_err(|e| MediaError::Sdp(e.to_string())) },
        )
        .await
    }

    /// Creates `pc`'s answer and sets it as its local description (on the negotiation
    /// runtime); returns the answer's SDP.
    pub(crate) async fn answer(&self, pc: &Arc<dyn PeerConnection>) -> Result<String, MediaError> {
        let pc = pc.clone();
        self.negotiate(async move {
            let answer = pc.create_answer(None).await.map_err(MediaError::webrtc)?;
            let answer_sdp = answer.sdp.clone();
            pc.set_local_description(answer).await.map_err(MediaError::webrtc)?;
            Ok(answer_sdp)
        })
        .await
    }

    /// The DTLS certificate of every peer connection of this engine.
    pub(crate) fn certificate(&self) -> &RTCCertificate {
        &self.inner.certificate
    }
}

/// The node's DTLS certificate: ECDSA P-256, self-signed, as the webrtc crate makes one for each
/// peer connection that brings none. One per engine, as Janus and mediasoup have one per
/// process or worker: the peer checks it against the fingerprint of the SDP it got, and each
/// handshake's keys are ephemeral (ECDHE) whatever the certificate. A key and a signature per
/// peer connection were 3% of the node's CPU in a storm of joins.
fn dtls_certificate() -> Result<RTCCertificate, MediaError> {
    let provider = crypto::default_provider().map_err(MediaError::webrtc)?;
    let params = CertificateParams::new(vec!["openvidu-rs".to_owned()]).map_err(MediaError::webrtc)?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params).map_err(MediaError::webrtc)
}
