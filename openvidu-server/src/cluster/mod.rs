//! What several masters share besides the [`Store`](crate::store::Store): delivery of
//! notifications to sockets held by another master ([`RedisBus`]) and the registry of which
//! master holds which participant socket, with a fencing epoch ([`RedisSockets`]).
//!
//! Each master also keeps a lease ([`MasterLeases`]): when one dies, another evicts the
//! participants it held that did not come back.
//!
//! A master alone (the default) needs none of this: every socket of its sessions is its own.
//! With `OPENVIDU_HA_REDIS_URL`, notifications for connections this master does not hold go
//! to the bus, and a participant whose master died can `connect` to any other master, which
//! finds it in the registry, takes it over (a new epoch) and tells the others to forget it.

mod bus;
mod leases;
mod placement;
mod sockets;

use std::sync::Arc;

use openvidu_core::id::ConnectionId;
use serde::{Deserialize, Serialize};

pub use bus::{LocalDelivery, RedisBus};
pub use leases::{LEASE, MasterLeases, RENEW_EVERY};
pub use placement::RedisPlacement;
pub use sockets::{RedisSockets, SocketEntry};

/// What a master asks the master holding some sockets to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "camelCase")]
pub enum Delivery {
    /// Send this text frame to each of `to`.
    Frame {
        /// The connections.
        to: Vec<ConnectionId>,
        /// The JSON-RPC frame.
        frame: String,
    },
    /// Close the sockets of `to` (evicted).
    Close {
        /// The connections.
        to: Vec<ConnectionId>,
    },
    /// Forget `connection` without evicting it: another master took its socket over.
    Forget {
        /// The connection.
        connection: ConnectionId,
        /// The new owner's epoch: holders with an older one let go.
        epoch: u64,
    },
}

/// Sends [`Delivery`]s to the other masters (fire and forget, in order).
pub trait RemoteDelivery: Send + Sync + 'static {
    /// Queues `delivery` for the other masters.
    fn deliver(&self, delivery: Delivery);
}

/// The HA parts of a master, when it runs with others.
#[derive(Clone)]
pub struct Cluster {
    /// This master's id (`master_…`), unique per process start.
    pub master_id: String,
    /// The bus to the other masters.
    pub bus: Arc<RedisBus>,
    /// Who holds which participant socket.
    pub sockets: Arc<RedisSockets>,
    /// Which media node hosts each session.
    pub placement: Arc<RedisPlacement>,
    /// Which masters are alive.
    pub leases: Arc<MasterLeases>,
    /// The cluster's incarnation (`life` of the JSON-RPC API): set by the first master of a
    /// Redis and kept while any master lives, so a participant whose `connect` fails after a
    /// master died learns it was not a crash of the whole service.
    pub life: u64,
}

/// Runs one Redis call within `timeout`; a failure or a timeout becomes its message.
pub(crate) async fn within<T>(
    timeout: std::time::Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("Redis did not answer in time".into()),
    }
}

impl Cluster {
    /// Connects this master (a new random id) to the cluster on `url`, keys under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, crate::store::StoreError> {
        use crate::store::StoreError;
        let timeout = std::time::Duration::from_secs(2);
        let conn = crate::store::RedisConn::open(url, timeout).await?;
        let id = openvidu_core::id::IdGenerator::connection_id(&openvidu_core::id::RandomIds);
        let master_id = format!("master_{}", id.as_str().trim_start_matches("con_"));
        let life_key = format!("{prefix}life");
        let mut c = conn.con();
        let now = crate::service::now_ms();
        let life: u64 = within(timeout, async {
            redis::cmd("SET").arg(&life_key).arg(now).arg("NX").query_async::<Option<String>>(&mut c).await?;
            redis::cmd("GET").arg(&life_key).query_async::<u64>(&mut c).await
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading the cluster's life: {e}")))?;
        let bus = Arc::new(RedisBus::start(conn.clone(), prefix, &master_id));
        let placement = Arc::new(RedisPlacement::new(conn.clone(), prefix, timeout));
        let sockets = Arc::new(RedisSockets::new(conn.clone(), prefix, timeout));
        let leases = Arc::new(MasterLeases::new(conn, prefix, timeout));
        leases.renew(&master_id).await?;
        tracing::info!(%master_id, "joined the cluster");
        Ok(Self { master_id, bus, sockets, placement, leases, life })
    }
}
