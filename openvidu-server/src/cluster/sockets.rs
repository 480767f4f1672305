//! Which master holds which participant socket, keyed by the JSON-RPC session id the client
//! reconnects with, and fenced by an epoch: each claim (join, or a take-over after `connect`)
//! increments it, so a master that was paused or cut off cannot act on a participant another
//! master took over (it sees a newer epoch and lets go). Each master's claims are also listed per
//! master, so that when a master dies the others find the participants it held.

use std::time::Duration;

use openvidu_core::id::{ConnectionId, SessionId};
use openvidu_core::model::OpenViduRole;
use redis::Script;
use serde::{Deserialize, Serialize};

use crate::store::{RedisConn, StoreError};

/// How long an entry lives after its last claim (a participant socket older than this is
/// long gone).
const TTL: Duration = Duration::from_secs(24 * 3600);

/// A participant socket as the registry knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketEntry {
    /// The session.
    pub session: SessionId,
    /// The connection.
    pub connection: ConnectionId,
    /// Its role (`None` for secret joins).
    pub role: Option<OpenViduRole>,
    /// The master holding it.
    pub master: String,
    /// The epoch of that holding (stored beside the JSON).
    #[serde(default, skip_serializing)]
    pub epoch: u64,
}

/// KEYS: the entry, its epoch counter, the set of the claiming master's sockets; ARGV: the
/// entry's JSON, the TTL in ms, the JSON-RPC session id.
const CLAIM: &str = r"
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return epoch
";

/// The socket registry in Redis.
pub struct RedisSockets {
    conn: RedisConn,
    prefix: String,
    timeout: Duration,
    claim: Script,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisSockets {
    /// The registry on `con`, keys under `prefix`.
    pub(crate) fn new(conn: RedisConn, prefix: &str, timeout: Duration) -> Self {
        Self { conn, prefix: prefix.to_owned(), timeout, claim: Script::new(CLAIM) }
    }

    fn keys(&self, rpc_id: &str) -> (String, String) {
        (format!("{}rpc:{rpc_id}", self.prefix), format!("{}rpc-epoch:{rpc_id}", self.prefix))
    }

    async fn bounded<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        super::within(self.timeout, f).await.map_err(StoreError::Unavailable)
    }

    /// Records that `master` holds `rpc_id`'s socket now; returns the new epoch.
    pub async fn claim(
        &self,
        rpc_id: &str,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        master: &str,
    ) -> Result<u64, StoreError> {
        let (key, epoch_key) = self.keys(rpc_id);
        let entry = SocketEntry {
            session: session.clone(),
            connection: connection.clone(),
            role,
            master: master.to_owned(),
            epoch: 0,
        };
        let json = serde_json::to_string(&entry).map_err(unavailable)?;
        let mut con = self.conn.con();
        let mut invocation = self.claim.key(&key);
        invocation.key(&epoch_key).key(self.sockets_of_key(master)).arg(json).arg(TTL.as_millis() as u64).arg(rpc_id);
        self.bounded(invocation.invoke_async(&mut con)).await
    }

    /// The key of the set of the JSON-RPC session ids a master claimed.
    fn sockets_of_key(&self, master: &str) -> String {
        format!("{}master-sockets:{master}", self.prefix)
    }

    /// The JSON-RPC session ids `master` claimed (some may have been taken over since, or be
    /// gone: check each entry).
    pub async fn claimed_by(&self, master: &str) -> Result<Vec<String>, StoreError> {
        let mut con = self.conn.con();
        self.bounded(redis::cmd("SMEMBERS").arg(self.sockets_of_key(master)).query_async(&mut con)).await
    }

    /// Forgets the set of sockets `master` claimed (once its participants are dealt with).
    pub async fn forget_master(&self, master: &str) -> Result<(), StoreError> {
        let mut con = self.conn.con();
        self.bounded(redis::cmd("DEL").arg(self.sockets_of_key(master)).query_async::<()>(&mut con)).await
    }

    /// The entry of `rpc_id`, if any.
    pub async fn lookup(&self, rpc_id: &str) -> Result<Option<SocketEntry>, StoreError> {
        let (key, _) = self.keys(rpc_id);
        let mut con = self.conn.con();
        let raw: Option<String> = self.bounded(redis::cmd("GET").arg(&key).query_async(&mut con)).await?;
        let Some(raw) = raw else { return Ok(None) };
        let (json, epoch) = raw.rsplit_once('|').ok_or_else(|| unavailable("malformed socket entry"))?;
        let mut entry: SocketEntry = serde_json::from_str(json).map_err(unavailable)?;
        entry.epoch = epoch.parse().map_err(unavailable)?;
        Ok(Some(entry))
    }

    /// Whether `master` still holds `rpc_id` at `epoch` (nobody took it over since).
    pub async fn holds(&self, rpc_id: &str, master: &str, epoch: u64) -> Result<bool, StoreError> {
        Ok(self.lookup(rpc_id).await?.is_some_and(|e| e.master == master && e.epoch == epoch))
    }
}
