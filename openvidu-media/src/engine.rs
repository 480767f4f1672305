//! The media engine: the UDP transport, the settings and the event channel every router and
//! endpoint of a media node shares.

use std::sync::Arc;

use openvidu_core::id::SessionId;
use tokio::sync::mpsc::UnboundedSender;

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
        Ok(Self { inner: Arc::new(EngineInner { config, transport, events }) })
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
}
