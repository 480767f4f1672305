//! [`RedisPlacement`]: which media node hosts each session, shared by the masters, so two
//! masters never place one session on two nodes (the first claim wins, atomically).

use std::time::Duration;

use openvidu_core::id::{MediaNodeId, SessionId};
use openvidu_media::{MediaError, Placement};
use redis::Script;

use crate::store::RedisConn;

const CLAIM: &str = r"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return ARGV[1]
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// Session placements in Redis.
pub struct RedisPlacement {
    conn: RedisConn,
    prefix: String,
    timeout: Duration,
    claim: Script,
    release: Script,
}

fn failed(e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(format!("placement store: {e}"))
}

impl RedisPlacement {
    /// Placements on `con`, keys under `prefix`.
    pub(crate) fn new(conn: RedisConn, prefix: &str, timeout: Duration) -> Self {
        Self { conn, prefix: prefix.to_owned(), timeout, claim: Script::new(CLAIM), release: Script::new(RELEASE) }
    }

    fn session_key(&self, session: &SessionId) -> String {
        format!("{}placement:{session}", self.prefix)
    }

    fn node_key(&self, node: &MediaNodeId) -> String {
        format!("{}node-sessions:{node}", self.prefix)
    }

    async fn bounded<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, MediaError> {
        super::within(self.timeout, f).await.map_err(failed)
    }
}

impl RedisPlacement {
    /// Claims, for the whole cluster, the handling of a media node's crash: `true` for the one
    /// master that should report it and close its sessions (for a minute), `false` for the others.
    pub async fn claim_crash(&self, node: &MediaNodeId) -> Result<bool, MediaError> {
        let mut con = self.conn.con();
        let key = format!("{}crashed:{node}", self.prefix);
        let set: Option<String> = self
            .bounded(redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(60_000).query_async(&mut con))
            .await?;
        Ok(set.is_some())
    }
}

fn node_id(raw: &str) -> Result<MediaNodeId, MediaError> {
    MediaNodeId::parse(raw).map_err(|e| failed(format!("bad node id {raw:?}: {e}")))
}

#[async_trait::async_trait]
impl Placement for RedisPlacement {
    async fn node_of(&self, session: &SessionId) -> Result<Option<MediaNodeId>, MediaError> {
        let mut con = self.conn.con();
        let raw: Option<String> =
            self.bounded(redis::cmd("GET").arg(self.session_key(session)).query_async(&mut con)).await?;
        raw.as_deref().map(node_id).transpose()
    }

    async fn claim(&self, session: &SessionId, node: &MediaNodeId) -> Result<MediaNodeId, MediaError> {
        let mut con = self.conn.con();
        let mut call = self.claim.key(self.session_key(session));
        call.key(self.node_key(node)).arg(node.as_str()).arg(session.as_str());
        let raw: String = self.bounded(call.invoke_async(&mut con)).await?;
        node_id(&raw)
    }

    async fn release(&self, session: &SessionId, node: &MediaNodeId) -> Result<bool, MediaError> {
        let mut con = self.conn.con();
        let mut call = self.release.key(self.session_key(session));
        call.key(self.node_key(node)).arg(node.as_str()).arg(session.as_str());
        let released: i64 = self.bounded(call.invoke_async(&mut con)).await?;
        Ok(released == 1)
    }

    async fn sessions_on(&self, node: &MediaNodeId) -> Result<Vec<SessionId>, MediaError> {
        let mut con = self.conn.con();
        let raw: Vec<String> =
            self.bounded(redis::cmd("SMEMBERS").arg(self.node_key(node)).query_async(&mut con)).await?;
        Ok(raw.iter().filter_map(|s| SessionId::parse(s).ok()).collect())
    }
}
