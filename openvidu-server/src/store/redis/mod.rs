//! The Redis [`Store`]: the state shared by several masters.
//!
//! Layout, under a caller-chosen prefix (so tests and clusters can share one Redis):
//! - `<prefix>session:<id>`: a hash `{v: version, d: JSON document}` holding the whole session (session,
//!   connections, usable tokens; see [`codec`]);
//! - `<prefix>sessions`: the set of session ids, maintained by the same scripts that create and delete
//!   documents, so listing never scans the keyspace.
//!
//! Each method is one atomic transition. A method that changes a session reads its document,
//! applies the same pure transition the in-memory store applies ([`super::transitions`]), and
//! writes the result back with a Lua compare-and-set on the version, retrying (bounded, with
//! jittered backoff) when another master got there first; tasks of one master that update the same
//! session queue on a local lock first, so only masters race each other. Creation and deletion are Lua
//! scripts too. Every Redis command is bounded by a timeout and every failure (refused, timed
//! out, reply of the wrong shape) is [`StoreError::Unavailable`]; the `ConnectionManager`
//! reconnects by itself, so the store works again as soon as Redis is back.

mod codec;

use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisResult, Script};
use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};

use super::transitions::{self, SessionDoc};
use super::{ConnectionUpdate, SessionSnapshot, Store, StoreError, StreamProperty, Unpublished};

/// How long one Redis command may take before the call fails with `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts of one compare-and-set transition before giving up under contention.
const MAX_ATTEMPTS: u32 = 16;

/// Local locks serializing this process's updates of one session (by hash of its id).
const LOCAL_LOCKS: usize = 256;

/// The Lua scripts, loaded once per store (and again by the client after a Redis restart).
struct Scripts {
    create: Script,
    cas: Script,
    remove: Script,
    remove_if: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(include_str!("create.lua")),
            cas: Script::new(include_str!("cas.lua")),
            remove: Script::new(include_str!("remove.lua")),
            remove_if: Script::new(include_str!("remove_if.lua")),
        }
    }
}

/// A session document as read: its version and its JSON text.
struct Stored {
    version: String,
    raw: String,
}

/// A client and a reconnecting connection to the Redis at `url` (TCP_NODELAY, every command
/// bounded by `timeout`): for the store and for the cluster's other parts.
pub(crate) async fn open(url: &str, timeout: Duration) -> Result<(::redis::Client, ConnectionManager), StoreError> {
    let invalid = |e: ::redis::RedisError| StoreError::Unavailable(format!("invalid Redis URL: {e}"));
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to each request.
    let info = ::redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(invalid)?
        .set_tcp_settings(::redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = ::redis::Client::open(info).map_err(invalid)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let connect_timeout = timeout.saturating_mul(3);
    let con =
        match tokio::time::timeout(connect_timeout, ConnectionManager::new_with_config(client.clone(), config)).await {
            Ok(Ok(con)) => con,
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("cannot connect to Redis: {e}"))),
            Err(_) => {
                return Err(StoreError::Unavailable(format!("cannot connect to Redis within {connect_timeout:?}")));
            }
        };
    Ok((client, con))
}

/// State in Redis, shared by every master connected to the same Redis and prefix.
pub struct RedisStore {
    con: ConnectionManager,
    prefix: String,
    sessions_key: String,
    timeout: Duration,
    scripts: Scripts,
    locks: Box<[tokio::sync::Mutex<()>]>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).field("timeout", &self.timeout).finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) and keeps every key under `prefix` (e.g. `ov:`).
    /// Fails with `Unavailable` when the URL is bad or Redis cannot be reached now; once
    /// connected, the store reconnects by itself.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, prefix, DEFAULT_TIMEOUT).await
    }

    /// [`connect`](Self::connect) with another bound on each Redis command.
    pub async fn connect_with_timeout(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let (_, con) = open(url, timeout).await?;
        let store = Self {
            con,
            prefix: prefix.to_owned(),
            sessions_key: format!("{prefix}sessions"),
            timeout,
            scripts: Scripts::new(),
            locks: (0..LOCAL_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        let mut con = store.con.clone();
        let pong: String = store.call("PING", ::redis::cmd("PING").query_async(&mut con)).await?;
        if pong != "PONG" {
            return Err(StoreError::Unavailable(format!("Redis answered {pong:?} to PING")));
        }
        tracing::info!(prefix, "connected to Redis");
        Ok(store)
    }

    /// The key of a session's document.
    fn key(&self, id: &SessionId) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// The local lock of a session's updates.
    fn lock_of(&self, id: &SessionId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        // The modulo keeps the index below the slice's length.
        &self.locks[(h.finish() % self.locks.len() as u64) as usize]
    }

    /// Runs one Redis command within the timeout; any failure is `Unavailable`.
    async fn call<T>(&self, op: &'static str, fut: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::warn!(op, error = %e, "Redis command failed");
                Err(StoreError::Unavailable(format!("Redis {op}: {e}")))
            }
            Err(_) => {
                tracing::warn!(op, timeout_ms = self.timeout.as_millis() as u64, "Redis command timed out");
                Err(StoreError::Unavailable(format!("Redis {op}: no reply within {:?}", self.timeout)))
            }
        }
    }

    /// Reads a session document with its version.
    async fn read(&self, id: &SessionId) -> Result<Option<Stored>, StoreError> {
        let mut con = self.con.clone();
        let reply: (Option<String>, Option<String>) =
            self.call("HMGET", ::redis::cmd("HMGET").arg(self.key(id)).arg("v").arg("d").query_async(&mut con)).await?;
        stored(id, reply)
    }

    /// Every listed session id.
    async fn ids(&self) -> Result<Vec<SessionId>, StoreError> {
        let mut con = self.con.clone();
        let members: Vec<String> =
            self.call("SMEMBERS", ::redis::cmd("SMEMBERS").arg(&self.sessions_key).query_async(&mut con)).await?;
        members
            .iter()
            .map(|m| {
                SessionId::parse(m)
                    .map_err(|e| StoreError::Unavailable(format!("Redis set {}: bad member: {e}", self.sessions_key)))
            })
            .collect()
    }

    /// Reads the documents of `ids` in one round trip; vanished ones are `None`.
    async fn read_many(&self, ids: &[SessionId]) -> Result<Vec<Option<Stored>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.key(id)).arg("v").arg("d");
        }
        let mut con = self.con.clone();
        let replies: Vec<(Option<String>, Option<String>)> =
            self.call("HMGET (pipeline)", pipe.query_async(&mut con)).await?;
        if replies.len() != ids.len() {
            return Err(StoreError::Unavailable(format!(
                "Redis answered {} replies to {} reads",
                replies.len(),
                ids.len()
            )));
        }
        ids.iter().zip(replies).map(|(id, r)| stored(id, r)).collect()
    }

    /// Writes `raw` if the document is still at `version`.
    async fn compare_and_set(&self, id: &SessionId, version: &str, raw: &str) -> Result<bool, StoreError> {
        let mut con = self.con.clone();
        let written: i64 = self
            .call("EVALSHA cas", self.scripts.cas.key(self.key(id)).arg(version).arg(raw).invoke_async(&mut con))
            .await?;
        Ok(written == 1)
    }

    /// Applies `f` to the session's document atomically (read, apply, compare-and-set, retry).
    /// A missing session is `missing`; an `Err` from `f` writes nothing.
    async fn transition<R: Send>(
        &self,
        id: &SessionId,
        missing: impl Fn() -> StoreError + Send + Sync,
        mut f: impl FnMut(&mut SessionDoc) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        let Ok(_queued) = tokio::time::timeout(self.timeout, self.lock_of(id).lock()).await else {
            tracing::warn!(session_id = %id, "updates of this session are stuck behind a slow Redis");
            return Err(StoreError::Unavailable(format!("session {id}: earlier updates still waiting for Redis")));
        };
        for attempt in 0..MAX_ATTEMPTS {
            let Some(Stored { version, raw }) = self.read(id).await? else {
                return Err(missing());
            };
            let mut doc = codec::decode(id, &raw)?;
            let out = f(&mut doc)?;
            let new = codec::encode(&doc)?;
            if new == raw || self.compare_and_set(id, &version, &new).await? {
                return Ok(out);
            }
            tracing::debug!(session_id = %id, attempt, "session changed concurrently, retrying");
            backoff(attempt).await;
        }
        tracing::warn!(session_id = %id, attempts = MAX_ATTEMPTS, "too many concurrent updates of one session");
        Err(StoreError::Unavailable(format!("session {id}: too many concurrent updates ({MAX_ATTEMPTS} attempts)")))
    }

    /// Removes a never-activated session older than `created_before`, unless it changed in a
    /// way that saves it. `found` is what the caller read.
    async fn collect(
        &self,
        id: &SessionId,
        mut found: Stored,
        created_before: Millis,
    ) -> Result<Option<Session>, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let doc = codec::decode(id, &found.raw)?;
            if !transitions::collectable(&doc, created_before) {
                return Ok(None);
            }
            let mut con = self.con.clone();
            let removed: i64 = self
                .call(
                    "EVALSHA remove_if",
                    self.scripts
                        .remove_if
                        .key(self.key(id))
                        .key(&self.sessions_key)
                        .arg(id.as_str())
                        .arg(&found.version)
                        .invoke_async(&mut con),
                )
                .await?;
            if removed == 1 {
                return Ok(Some(doc.snapshot.session));
            }
            backoff(attempt).await;
            match self.read(id).await? {
                Some(again) => found = again,
                None => return Ok(None),
            }
        }
        Err(StoreError::Unavailable(format!("session {id}: too many concurrent updates ({MAX_ATTEMPTS} attempts)")))
    }
}

/// Checks the shape of a `HMGET v d` reply.
fn stored(id: &SessionId, reply: (Option<String>, Option<String>)) -> Result<Option<Stored>, StoreError> {
    match reply {
        (None, None) => Ok(None),
        (Some(version), Some(raw)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(Stored { version, raw }))
        }
        (v, d) => Err(StoreError::Unavailable(format!(
            "session {id}: malformed document in Redis (version {v:?}, document {})",
            if d.is_some() { "present" } else { "missing" }
        ))),
    }
}

/// Sleeps a random while, growing with the attempt, so that contenders spread out.
async fn backoff(attempt: u32) {
    use std::hash::{BuildHasher, Hasher};
    let cap_us: u64 = (500u64 << attempt.min(8)).min(50_000);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let us = h.finish() % (cap_us + 1);
    tokio::time::sleep(Duration::from_micros(us)).await;
}

/// The error of a method whose session does not exist.
fn not_found(id: &SessionId) -> impl Fn() -> StoreError + Send + Sync + '_ {
    move || StoreError::SessionNotFound(id.clone())
}

#[async_trait]
impl Store for RedisStore {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        let id = session.id.clone();
        let raw = codec::encode(&SessionDoc::new(session))?;
        let mut con = self.con.clone();
        let created: i64 = self
            .call(
                "EVALSHA create",
                self.scripts
                    .create
                    .key(self.key(&id))
                    .key(&self.sessions_key)
                    .arg(raw)
                    .arg(id.as_str())
                    .invoke_async(&mut con),
            )
            .await?;
        if created == 1 {
            tracing::debug!(session_id = %id, "session created in Redis");
            Ok(())
        } else {
            Err(StoreError::SessionExists(id))
        }
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        match self.read(id).await? {
            None => Ok(None),
            Some(s) => Ok(Some(codec::decode(id, &s.raw)?.snapshot)),
        }
    }

    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        let ids = self.ids().await?;
        let docs = self.read_many(&ids).await?;
        let mut all = ids
            .iter()
            .zip(docs)
            .filter_map(|(id, s)| s.map(|s| codec::decode(id, &s.raw).map(|d| d.snapshot)))
            .collect::<Result<Vec<_>, _>>()?;
        transitions::sort_sessions(&mut all);
        Ok(all)
    }

    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        let mut con = self.con.clone();
        let removed: Option<String> = self
            .call(
                "EVALSHA remove",
                self.scripts.remove.key(self.key(id)).key(&self.sessions_key).arg(id.as_str()).invoke_async(&mut con),
            )
            .await?;
        // Removed even if its text turns out unreadable: the error then says what was lost.
        match removed {
            None => Ok(None),
            Some(raw) => {
                tracing::debug!(session_id = %id, "session removed from Redis");
                Ok(Some(codec::decode(id, &raw)?.snapshot))
            }
        }
    }

    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError> {
        let ids = self.ids().await?;
        let docs = self.read_many(&ids).await?;
        let mut removed = Vec::new();
        for (id, found) in ids.iter().zip(docs) {
            let Some(found) = found else { continue };
            if let Some(session) = self.collect(id, found, created_before).await? {
                tracing::debug!(session_id = %id, "inactive session collected");
                removed.push(session);
            }
        }
        removed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(removed)
    }

    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError> {
        let session = connection.session_id.clone();
        self.transition(&session, not_found(&session), |d| {
            transitions::create_connection(d, connection.clone(), token.clone())
        })
        .await
    }

    async fn remove_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
    ) -> Result<Connection, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_connection(d, connection)).await
    }

    async fn activate_connection(
        &self,
        session: &SessionId,
        token: &TokenId,
        info: ActiveInfo,
    ) -> Result<Connection, StoreError> {
        self.transition(
            session,
            || StoreError::TokenNotFound,
            |d| transitions::activate_connection(d, token, info.clone()),
        )
        .await
    }

    async fn update_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, StoreError> {
        self.transition(session, not_found(session), |d| transitions::update_connection(d, connection, role, record))
            .await
    }

    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError> {
        self.transition(session, not_found(session), |d| transitions::add_publisher(d, connection, publisher.clone()))
            .await
    }

    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_publisher(d, stream)).await
    }

    async fn add_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        subscriber: Subscriber,
    ) -> Result<(), StoreError> {
        self.transition(session, not_found(session), |d| transitions::add_subscriber(d, connection, subscriber.clone()))
            .await
    }

    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_subscriber(d, connection, stream)).await
    }

    async fn set_recording(&self, session: &SessionId, recording: bool) -> Result<bool, StoreError> {
        self.transition(session, not_found(session), |d| transitions::set_recording(d, recording)).await
    }

    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        self.transition(session, not_found(session), |d| transitions::set_stream_property(d, stream, property.clone()))
            .await
    }
}

#[cfg(test)]
mod tests;
