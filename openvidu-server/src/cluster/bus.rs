//! [`RedisBus`]: deliveries between masters over Redis pub/sub.
//!
//! One channel (`<prefix>bus`) for the cluster. Each master publishes from one task, in the
//! order its service produced the deliveries, so the notifications of a session that one
//! master emits reach every other master in order (Redis keeps a publisher's order). Each
//! master subscribes and hands what others published to its own sockets. Delivery is at most
//! once: a master that is disconnected from Redis misses what was published meanwhile (its
//! clients resynchronise by reconnecting, as after any network trouble).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Delivery, RemoteDelivery};
use crate::store::RedisConn;

/// What travels on the channel.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    delivery: Delivery,
}

/// Receives what other masters publish.
pub trait LocalDelivery: Send + Sync + 'static {
    /// Hands a delivery to this master's own sockets.
    fn deliver_local(&self, delivery: Delivery);
}

/// The cluster bus on Redis pub/sub.
pub struct RedisBus {
    master_id: String,
    queue: mpsc::UnboundedSender<Delivery>,
    local: Arc<OnceLock<Arc<dyn LocalDelivery>>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RedisBus {
    /// Starts publishing on `con` and subscribing through `client`; deliveries from others go
    /// to the [`LocalDelivery`] set with [`attach`](Self::attach).
    pub(crate) fn start(conn: RedisConn, prefix: &str, master_id: &str) -> Self {
        let channel = format!("{prefix}bus");
        let (queue, rx) = mpsc::unbounded_channel();
        let local: Arc<OnceLock<Arc<dyn LocalDelivery>>> = Arc::new(OnceLock::new());
        let publisher = tokio::spawn(publish_loop(conn.clone(), channel.clone(), master_id.to_owned(), rx));
        let subscriber = tokio::spawn(subscribe_loop(conn, channel, master_id.to_owned(), local.clone()));
        Self {
            master_id: master_id.to_owned(),
            queue,
            local,
            tasks: vec![publisher.abort_handle(), subscriber.abort_handle()],
        }
    }

    /// Where deliveries from other masters go (this master's participants). Once.
    pub fn attach(&self, local: Arc<dyn LocalDelivery>) {
        let _ = self.local.set(local);
    }

    /// This master's id.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }
}

impl RemoteDelivery for RedisBus {
    fn deliver(&self, delivery: Delivery) {
        let _ = self.queue.send(delivery);
    }
}

async fn publish_loop(conn: RedisConn, channel: String, origin: String, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    while let Some(delivery) = rx.recv().await {
        let text = match serde_json::to_string(&Envelope { origin: origin.clone(), delivery }) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "bus: cannot encode a delivery");
                continue;
            }
        };
        let mut con = conn.con();
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PUBLISH").arg(&channel).arg(&text).query_async::<i64>(&mut con),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "bus: publish failed; the delivery is lost"),
            Err(_) => tracing::warn!("bus: publish timed out; the delivery is lost"),
        }
    }
}

async fn subscribe_loop(conn: RedisConn, channel: String, me: String, local: Arc<OnceLock<Arc<dyn LocalDelivery>>>) {
    let mut backoff = Duration::from_millis(100);
    let mut moved = conn.changes();
    loop {
        moved.borrow_and_update();
        match conn.client().get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    tracing::info!(%channel, master_id = %me, "bus subscribed");
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    loop {
                        let msg = tokio::select! {
                            msg = messages.next() => msg,
                            // Redis moved to another master (Sentinel): subscribe there.
                            _ = moved.changed() => break,
                        };
                        let Some(msg) = msg else { break };
                        let Ok(text) = msg.get_payload::<String>() else { continue };
                        match serde_json::from_str::<Envelope>(&text) {
                            Ok(env) if env.origin != me => {
                                if let Some(l) = local.get() {
                                    l.deliver_local(env.delivery);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "bus: malformed delivery ignored"),
                        }
                    }
                    tracing::warn!(%channel, "bus subscription lost; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "bus: subscribe failed"),
            },
            Err(e) => tracing::debug!(error = %e, "bus: cannot connect to Redis"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
