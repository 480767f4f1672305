//! Starting a complete master node in-process: [`Server::builder`] → [`RunningServer`], which
//! stops the server when dropped. The `openvidu-server` binary is this same builder.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::accept::NoDelayAcceptor;
use openvidu_core::id::{IdGenerator, RandomIds};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use openvidu_media::{MediaConfig, MediaError, MediaNode, MediaWorker, UdpPorts};

use crate::config::{Config, ConfigError};
use crate::events::{Events, QUEUE_CAPACITY};
use crate::service::OpenViduService;
use crate::store::{MemoryStore, RedisStore, Store, StoreError};
use crate::tls::{TlsError, TlsMaterial};
use crate::{cdr, rest, webhook};

/// Why a server could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The media engine could not start.
    #[error("media engine: {0}")]
    Media(#[from] MediaError),
    /// The shared state store (OPENVIDU_HA_REDIS_URL) cannot be reached.
    #[error("OPENVIDU_HA_REDIS_URL: {0}")]
    Store(StoreError),
    /// The recordings folder is not usable.
    #[error("OPENVIDU_RECORDING_PATH {path}: {source}")]
    RecordingPath {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds a master node. Everything has a default; `start` binds and serves.
#[must_use = "a builder does nothing until `start` is called"]
pub struct ServerBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    ids: Arc<dyn IdGenerator>,
}

/// Entry point: `Server::builder()`.
pub struct Server;

impl Server {
    /// An embedded server on `127.0.0.1`, any free port, self-signed TLS, random secret.
    pub fn builder() -> ServerBuilder {
        let secret = RandomIds.random_suffix(23);
        ServerBuilder { config: Config::embedded(secret), store: None, ids: Arc::new(RandomIds) }
    }
}

impl ServerBuilder {
    /// Replaces every setting.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// `OPENVIDU_SECRET`.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.config.secret = secret.into();
        self
    }
    /// TLS (default) or plain HTTP.
    pub fn https(mut self, on: bool) -> Self {
        self.config.https = on;
        self
    }
    /// Listening address.
    pub fn address(mut self, addr: std::net::IpAddr) -> Self {
        self.config.address = addr;
        self
    }
    /// Listening port (0 = any free one).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }
    /// `OPENVIDU_RECORDING`.
    pub fn recording(mut self, on: bool) -> Self {
        self.config.recording = on;
        self
    }
    /// `OPENVIDU_RECORDING_PATH`.
    pub fn recording_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.recording_path = path.into();
        self
    }
    /// `OPENVIDU_CDR` with its folder.
    pub fn cdr_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.cdr_path = Some(path.into());
        self
    }
    /// The state store (default: Redis when `OPENVIDU_HA_REDIS_URL` is set, else in memory).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }
    /// The id generator (default: random).
    pub fn id_generator(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = ids;
        self
    }
    /// Changes settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds, starts the background tasks and serves. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        let mut config = self.config;
        config.validate()?;
        // A master alone with its in-memory state owns every recording in its folder.
        let alone = self.store.is_none() && config.ha_redis_url.is_none();
        let store: Arc<dyn Store> = match (self.store, &config.ha_redis_url) {
            (Some(store), _) => store,
            (None, Some(url)) => Arc::new(RedisStore::connect(url, "ov:").await.map_err(ServerError::Store)?),
            (None, None) => Arc::new(MemoryStore::new()),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();

        let addr = SocketAddr::new(config.address, config.port);
        let listener = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;

        config.port = local.port();
        let scheme = if config.https { "https" } else { "http" };
        let host = match (&config.domain_or_public_ip, local.ip()) {
            (Some(d), _) => d.clone(),
            (None, ip) if ip.is_unspecified() => "localhost".to_owned(),
            (None, std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, ip) => ip.to_string(),
        };
        let url_host = match (&config.domain_or_public_ip, local.ip()) {
            (None, ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            _ => host.clone(),
        };
        let url = format!("{scheme}://{url_host}:{}", local.port());
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            if config.https && local.port() == 443 {
                format!("https://{host}")
            } else {
                format!("{scheme}://{host}:{}", local.port())
            }
        });

        if config.recording {
            std::fs::create_dir_all(&config.recording_path).map_err(|source| ServerError::RecordingPath {
                path: config.recording_path.display().to_string(),
                source,
            })?;
            if alone {
                let folder = crate::recordings::RecordingFolder::new(config.recording_path.clone(), public_url.clone());
                if let Err(e) = folder.seal_interrupted().await {
                    tracing::warn!(error = %e, "checking the recordings left in progress");
                }
            }
        }

        let mut tasks = Vec::new();
        let webhook = config.webhook.clone().map(|w| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            let events = w.events.clone();
            tasks.push(tokio::spawn(webhook::run(w, rx, webhook::RetrySchedule::default())));
            (tx, events)
        });
        let cdr = config.cdr_path.clone().map(|dir| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tasks.push(tokio::spawn(cdr::run(dir, rx)));
            tx
        });

        let tls = if config.https {
            Some(match &config.tls_files {
                Some((c, k)) => TlsMaterial::from_files(c, k)?,
                None => TlsMaterial::self_signed(&config.domain_or_public_ip.iter().cloned().collect::<Vec<_>>())?,
            })
        } else {
            None
        };

        let config = Arc::new(config);
        let cluster = match &config.ha_redis_url {
            Some(url) => Some(crate::cluster::Cluster::connect(url, "ov:").await.map_err(ServerError::Store)?),
            None => None,
        };
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let mut media_pool = None;
        let media: Arc<dyn MediaNode> = if config.media_nodes.is_empty() {
            // The media plane on a thread of its own (see `MediaWorker`).
            Arc::new(MediaWorker::start(media_config(&config), media_tx)?)
        } else {
            let pool = openvidu_media::MediaNodePool::new(Vec::new());
            let pool = Arc::new(match &cluster {
                Some(c) => pool.with_placement(c.placement.clone()),
                None => pool,
            });
            for uri in &config.media_nodes {
                let node = openvidu_media::RemoteMediaNode::connect(uri, &config.secret, media_tx.clone()).await?;
                tracing::info!(%uri, media_node_id = %node.id(), "media node connected");
                pool.add_remote(Arc::new(node), uri.clone())?;
            }
            media_pool = Some((pool.clone(), media_tx));
            pool
        };
        let svc =
            OpenViduService::new(config.clone(), public_url.clone(), store, self.ids, Events::new(webhook, cdr), media);
        if let Some((pool, media_tx)) = media_pool {
            svc.set_media_pool(pool, media_tx);
        }
        if let Some(cluster) = cluster {
            svc.join_cluster(cluster);
        }
        {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = media_rx.recv().await {
                    svc.deliver_media_event(event);
                }
            }));
        }

        tasks.push(tokio::spawn(crate::media_watch::run(svc.clone())));
        if let Some(every) = config.garbage_interval {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = svc.collect_garbage().await {
                        tracing::warn!(error = %e, "garbage collection failed");
                    }
                }
            }));
        }

        let mut app = rest::router(svc.clone())
            .merge(crate::signalling::router(svc.clone()))
            .merge(crate::demo::router(svc.clone()));
        {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = openvidu_media::timer_grid::aligned_interval(std::time::Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    crate::signalling::sweep_detached(&svc).await;
                }
            }));
        }
        if svc.cluster().is_some() {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::cluster::RENEW_EVERY);
                let mut dead_since = std::collections::HashMap::new();
                loop {
                    tick.tick().await;
                    crate::signalling::watch_masters(&svc, &mut dead_since).await;
                }
            }));
        }
        if config.support_deprecated_api {
            // Routing happens inside `app`, so the rewrite wraps it from outside.
            app = axum::Router::new()
                .fallback_service(app)
                .layer(axum::middleware::map_request(rest::rewrite_deprecated_path));
        }
        let make = app.into_make_service_with_connect_info::<SocketAddr>();

        // Every accepted socket gets TCP_NODELAY: a WebSocket answer followed by a notification
        // (or a response written in two parts) otherwise waits for the peer's delayed ACK, about
        // 40 ms on Linux, under Nagle's algorithm.
        let handle = axum_server::Handle::new();
        let serve_handle = handle.clone();
        let server_task = match &tls {
            Some(m) => {
                let rustls = axum_server::tls_rustls::RustlsConfig::from_pem(
                    m.cert_pem.clone().into_bytes(),
                    m.key_pem.clone().into_bytes(),
                )
                .await
                .map_err(|e| TlsError::Generate(e.to_string()))?;
                let server = axum_server::from_tcp_rustls(listener, rustls)
                    .map_err(|source| ServerError::Bind { addr, source })?
                    .map(|tls| tls.acceptor(NoDelayAcceptor))
                    .handle(serve_handle);
                tokio::spawn(async move {
                    if let Err(e) = server.serve(make).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(|source| ServerError::Bind { addr, source })?
                    .acceptor(NoDelayAcceptor)
                    .handle(serve_handle);
                tokio::spawn(async move {
                    if let Err(e) = server.serve(make).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
        };
        tracing::info!(%url, %public_url, "openvidu-server listening");
        Ok(RunningServer {
            url,
            public_url,
            local_addr: local,
            secret: config.secret.clone(),
            certificate_pem: tls.map(|t| t.cert_pem),
            handle,
            server_task: Some(server_task),
            tasks,
        })
    }
}

/// A server that is running; dropping it stops it.
#[must_use = "the server stops when this is dropped"]
pub struct RunningServer {
    url: String,
    public_url: String,
    local_addr: SocketAddr,
    secret: String,
    certificate_pem: Option<String>,
    handle: axum_server::Handle<SocketAddr>,
    server_task: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The URL this process can reach the server at (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The public URL tokens are built from.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }
    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// The REST secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }
    /// The self-signed (or configured) certificate, when serving TLS.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }
    /// Waits until the server stops (for `main`).
    pub async fn wait(mut self) {
        if let Some(t) = self.server_task.take() {
            let _ = t.await;
        }
    }
    /// Stops accepting, lets requests in flight finish for up to `grace`, then stops.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        self.handle.graceful_shutdown(Some(grace));
        if let Some(t) = self.server_task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        for t in &self.tasks {
            t.abort();
        }
        if let Some(t) = &self.server_task {
            t.abort();
        }
    }
}

/// The media engine's settings from the node's.
fn media_config(config: &Config) -> MediaConfig {
    let mut m = MediaConfig::default();
    m.ice_host_addresses = config.webrtc_addresses.clone();
    m.announced_address = config.domain_or_public_ip.as_deref().and_then(|d| d.parse().ok());
    m.udp = UdpPorts::Mux { port: config.webrtc_udp_port };
    [
        m.video_max_recv_bandwidth_kbps,
        m.video_min_recv_bandwidth_kbps,
        m.video_max_send_bandwidth_kbps,
        m.video_min_send_bandwidth_kbps,
    ] = config.video_bandwidth;
    m.keyframe_replay_age = config.keyframe_replay_age;
    // The COMPOSED encoder is kept warm only where recordings can happen.
    if !config.recording {
        m.recording.warm_encoders = 0;
    }
    m
}
