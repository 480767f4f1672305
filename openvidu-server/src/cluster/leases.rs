//! Master leases: each master keeps a key alive in Redis (renewed every [`RENEW_EVERY`], gone
//! [`LEASE`] after its last renewal), so the others learn when it died. The participants a dead
//! master held and that did not reconnect to another master within the reconnection window are
//! then evicted by one surviving master (claimed in Redis), with reason `networkDisconnect`, as
//! their own master would have done: no ghost stays in a session.

use std::time::Duration;

use crate::store::{RedisConn, StoreError};

/// How long a master counts as alive after its last renewal.
pub const LEASE: Duration = Duration::from_secs(3);

/// How often a master renews its lease (and looks for dead ones).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// The leases of the masters of one cluster.
pub struct MasterLeases {
    conn: RedisConn,
    prefix: String,
    timeout: Duration,
}

impl MasterLeases {
    /// The leases on `con`, keys under `prefix`.
    pub(crate) fn new(conn: RedisConn, prefix: &str, timeout: Duration) -> Self {
        Self { conn, prefix: prefix.to_owned(), timeout }
    }

    fn masters_key(&self) -> String {
        format!("{}masters", self.prefix)
    }

    fn lease_key(&self, master: &str) -> String {
        format!("{}master:{master}", self.prefix)
    }

    async fn bounded<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        super::within(self.timeout, f).await.map_err(StoreError::Unavailable)
    }

    /// Renews `master`'s lease (and lists it among the masters).
    pub async fn renew(&self, master: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(self.lease_key(master)).arg(1).arg("PX").arg(LEASE.as_millis() as u64).ignore();
        pipe.cmd("SADD").arg(self.masters_key()).arg(master).ignore();
        let mut con = self.conn.con();
        self.bounded(pipe.query_async::<()>(&mut con)).await
    }

    /// The listed masters whose lease ran out.
    pub async fn dead(&self) -> Result<Vec<String>, StoreError> {
        let mut con = self.conn.con();
        let masters: Vec<String> =
            self.bounded(redis::cmd("SMEMBERS").arg(self.masters_key()).query_async(&mut con)).await?;
        if masters.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for m in &masters {
            pipe.cmd("EXISTS").arg(self.lease_key(m));
        }
        let alive: Vec<bool> = self.bounded(pipe.query_async(&mut con)).await?;
        Ok(masters.into_iter().zip(alive).filter(|(_, alive)| !alive).map(|(m, _)| m).collect())
    }

    /// Claims the clean-up of dead master `dead` for `me`; `true` for the one master that gets it.
    pub async fn claim_cleanup(&self, dead: &str, me: &str) -> Result<bool, StoreError> {
        let key = format!("{}cleanup:{dead}", self.prefix);
        let mut con = self.conn.con();
        let set: Option<String> = self
            .bounded(redis::cmd("SET").arg(key).arg(me).arg("NX").arg("PX").arg(60_000).query_async(&mut con))
            .await?;
        Ok(set.is_some())
    }

    /// Unlists a dead master whose participants were dealt with.
    pub async fn forget(&self, master: &str) -> Result<(), StoreError> {
        let mut con = self.conn.con();
        self.bounded(redis::cmd("SREM").arg(self.masters_key()).arg(master).query_async::<()>(&mut con)).await
    }
}
