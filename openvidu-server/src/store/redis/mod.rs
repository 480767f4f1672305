//! The Redis [`Store`]: the state shared by several masters.
//!
//! Layout, under a caller-chosen prefix (so tests and clusters can share one Redis):
//! - `<prefix>session:<id>`: a hash holding the session in parts: a version counter, the session,
//!   and one field per connection (see [`codec`]), so that a transition writes only what it
//!   changed and its cost does not grow with the size of the session;
//! - `<prefix>sessions`: the set of session ids, maintained by the same scripts that create and delete
//!   sessions, so listing never scans the keyspace.
//!
//! Each method is one atomic transition: it applies the same pure transition the in-memory store
//! applies ([`super::transitions`]) to the session as last seen, and writes the parts it touched
//! with a Lua compare-and-set on the version (its number and its writer's tag). The session as
//! last seen is kept by this master after each write, so a master updating its own sessions makes
//! **one round trip** per call; when another master changed the session meanwhile, the script
//! answers the session as it is now and the transition is applied again to that answer in the
//! next round (at most [`MAX_ATTEMPTS`] times).
//!
//! Transitions are **committed in groups** ([`commit`]): each call queues its transition and
//! waits for the outcome; one task per store takes everything queued, applies each session's
//! transitions in queue order and sends one compare-and-set per session, all in one pipeline, so
//! N concurrent calls cost one round trip instead of N, and only masters race each other. A
//! refusal found on the session as last seen is confirmed by the same compare-and-set (the version
//! still matches, so it was current).
//! Creation and deletion are Lua scripts too. Every Redis command is bounded by a timeout
//! and every failure (refused, timed out, reply of the wrong shape) is
//! [`StoreError::Unavailable`]; the `ConnectionManager` reconnects by itself, so the store works
//! again as soon as Redis is back.

mod batch;
mod codec;
mod commit;
mod conn;

pub(crate) use conn::{RedisConn, RedisTarget};

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{RedisResult, Script};
use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};

use self::batch::{Batches, Queued, Touched};
use self::codec::Decoded;
use super::transitions::{self, SessionDoc};
use super::{ConnectionUpdate, SessionSnapshot, Store, StoreError, StreamProperty, Unpublished};

/// How long one Redis command may take before the call fails with `Unavailable`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts of one compare-and-set transition before giving up under contention.
const MAX_ATTEMPTS: u32 = 16;

/// The Lua scripts, loaded once per store (and again by the client after a Redis restart).
struct Scripts {
    create: Script,
    write: Script,
    remove: Script,
    remove_if: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(include_str!("create.lua")),
            write: Script::new(include_str!("write.lua")),
            remove: Script::new(include_str!("remove.lua")),
            remove_if: Script::new(include_str!("remove_if.lua")),
        }
    }
}

/// Sessions as this master last read or wrote them, to transition without reading first. Only an
/// optimisation: every write is checked against the version in Redis.
#[derive(Default)]
struct Seen {
    sessions: std::sync::Mutex<HashMap<SessionId, Decoded>>,
}

impl Seen {
    /// Sessions kept at most; past this the memory is given back (they are read again on use).
    const MAX: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Decoded>> {
        // Plain inserts and removals: a panic elsewhere leaves the map consistent.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, id: &SessionId) -> Option<Decoded> {
        self.lock().remove(id)
    }

    fn put(&self, id: SessionId, seen: Decoded) {
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(id, seen);
    }

    fn forget(&self, id: &SessionId) {
        self.lock().remove(id);
    }
}

/// State in Redis, shared by every master connected to the same Redis and prefix.
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// What the store and its committing tasks share.
struct Inner {
    conn: RedisConn,
    prefix: String,
    sessions_key: String,
    timeout: Duration,
    scripts: Scripts,
    batches: Batches,
    seen: Seen,
    /// This store's part of every writer tag: random, so that no other master's tags match.
    writer: String,
    /// Writes tagged so far (the other part of the tag).
    writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.inner.prefix).field("timeout", &self.inner.timeout).finish()
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
        let conn = RedisConn::open(url, timeout).await?;
        let inner = Inner {
            conn,
            prefix: prefix.to_owned(),
            sessions_key: format!("{prefix}sessions"),
            timeout,
            scripts: Scripts::new(),
            batches: Batches::default(),
            seen: Seen::default(),
            writer: openvidu_core::id::IdGenerator::random_suffix(&openvidu_core::id::RandomIds, 11),
            writes: std::sync::atomic::AtomicU64::new(0),
        };
        let mut con = inner.conn.con();
        let pong: String = inner.call("PING", ::redis::cmd("PING").query_async(&mut con)).await?;
        if pong != "PONG" {
            return Err(StoreError::Unavailable(format!("Redis answered {pong:?} to PING")));
        }
        tracing::info!(prefix, "connected to Redis");
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Applies `f` to the session atomically and writes back the parts `touched` names (from
    /// what `f` returned). A missing session is `missing`; an `Err` from `f` writes nothing.
    ///
    /// The transition is queued and committed with whatever else is queued (see [`commit`]); `f`
    /// may run more than once, on the session as this master last saw it and again on the session
    /// as Redis answered it.
    async fn transition<R: Send + 'static>(
        &self,
        id: &SessionId,
        missing: impl Fn() -> StoreError + Send + 'static,
        f: impl FnMut(&mut SessionDoc) -> Result<R, StoreError> + Send + 'static,
        touched: impl Fn(&R) -> Touched + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        if self.inner.batches.push(id, Box::new(Queued::new(f, touched, missing, reply))) {
            tokio::spawn(self.inner.clone().commit_queued());
        }
        match outcome.await {
            Ok(out) => out,
            Err(_) => Err(StoreError::Unavailable(format!("session {id}: the update was dropped"))),
        }
    }
}

impl Inner {
    /// The key of a session's document.
    fn key(&self, id: &SessionId) -> String {
        format!("{}session:{id}", self.prefix)
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

    /// Reads a session's hash.
    async fn read(&self, id: &SessionId) -> Result<Option<Decoded>, StoreError> {
        let mut con = self.conn.con();
        let fields: Vec<(String, String)> =
            self.call("HGETALL", ::redis::cmd("HGETALL").arg(self.key(id)).query_async(&mut con)).await?;
        codec::decode(id, fields)
    }

    /// Every listed session id.
    async fn ids(&self) -> Result<Vec<SessionId>, StoreError> {
        let mut con = self.conn.con();
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

    /// Reads the hashes of `ids` in one round trip; vanished ones are `None`.
    async fn read_many(&self, ids: &[SessionId]) -> Result<Vec<Option<Decoded>>, StoreError> {
        self.read_each(ids).await?.into_iter().collect()
    }

    /// Reads the hashes of `ids` in one round trip, each decoded on its own (one malformed
    /// session does not fail the others).
    async fn read_each(&self, ids: &[SessionId]) -> Result<Vec<Result<Option<Decoded>, StoreError>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.key(id));
        }
        let mut con = self.conn.con();
        let replies: Vec<Vec<(String, String)>> = self.call("HGETALL (pipeline)", pipe.query_async(&mut con)).await?;
        if replies.len() != ids.len() {
            return Err(StoreError::Unavailable(format!(
                "Redis answered {} replies to {} reads",
                replies.len(),
                ids.len()
            )));
        }
        Ok(ids.iter().zip(replies).map(|(id, fields)| codec::decode(id, fields)).collect())
    }

    /// The write script's call that writes the `touched` parts of `seen` if the session is still
    /// the version `seen` was made from (it answers `ok`), or answers the session as it is now
    /// (`stale`, then its hash, empty when it is gone). Gives new connections their sequence
    /// numbers, and, when anything is written, makes `seen` the version this write makes: one up,
    /// tagged with a tag of its own.
    fn write_cmd(&self, id: &SessionId, seen: &mut Decoded, touched: &Touched) -> Result<::redis::Cmd, StoreError> {
        let mut set = Vec::new();
        let mut delete = Vec::new();
        // Connections created by this write come after every other, in the order they were made.
        let mut next_seq = seen.last_seq.max(seen.version) + 1;
        if touched.session {
            set.push((codec::SESSION.to_owned(), codec::encode_session(&seen.doc.snapshot.session)?));
        }
        for cid in &touched.connections {
            let field = codec::connection_field(cid);
            // From the end: a connection just created is the last one.
            match seen.doc.snapshot.connections.iter().rev().find(|c| &c.id == cid) {
                Some(c) => {
                    let seq = *seen.seqs.entry(cid.clone()).or_insert_with(|| {
                        seen.last_seq = next_seq;
                        next_seq += 1;
                        seen.last_seq
                    });
                    set.push((field, codec::encode_connection(c, seen.doc.token_of(cid), seq)?));
                }
                None => {
                    seen.seqs.remove(cid);
                    delete.push(field);
                }
            }
        }
        // A write that changes nothing only checks the version, and keeps its tag.
        let tag = (!touched.is_empty()).then(|| {
            let n = self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{}.{n:x}", self.writer)
        });
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(self.scripts.write.get_hash())
            .arg(1)
            .arg(self.key(id))
            .arg(seen.version)
            .arg(&seen.writer)
            .arg(tag.as_deref().unwrap_or(&seen.writer))
            .arg(set.len());
        for (field, value) in &set {
            cmd.arg(field).arg(value);
        }
        for field in &delete {
            cmd.arg(field);
        }
        if let Some(tag) = tag {
            seen.version += 1;
            seen.writer = tag;
        }
        Ok(cmd)
    }

    /// Removes a never-activated session older than `created_before`, unless it changed in a
    /// way that saves it. `found` is what the caller read.
    async fn collect(
        &self,
        id: &SessionId,
        mut found: Decoded,
        created_before: Millis,
    ) -> Result<Option<Session>, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            if !transitions::collectable(&found.doc, created_before) {
                return Ok(None);
            }
            let mut con = self.conn.con();
            let removed: i64 = self
                .call(
                    "EVALSHA remove_if",
                    self.scripts
                        .remove_if
                        .key(self.key(id))
                        .key(&self.sessions_key)
                        .arg(id.as_str())
                        .arg(found.version.to_string())
                        .invoke_async(&mut con),
                )
                .await?;
            if removed == 1 {
                self.seen.forget(id);
                return Ok(Some(found.doc.snapshot.session));
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

/// Development builds check that a transition changed nothing but the parts it declares (a part
/// left out would be lost in Redis).
#[cfg(debug_assertions)]
fn check_touched(before: &SessionDoc, after: &SessionDoc, touched: &Touched) {
    let (b, a) = (&before.snapshot, &after.snapshot);
    debug_assert!(touched.session || b.session == a.session, "session {} changed undeclared", a.session.id);
    for c in b.connections.iter().chain(a.connections.iter()) {
        if touched.connections.contains(&c.id) {
            continue;
        }
        debug_assert!(
            b.connection(&c.id) == a.connection(&c.id) && before.token_of(&c.id) == after.token_of(&c.id),
            "connection {} changed undeclared",
            c.id
        );
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
fn not_found(id: &SessionId) -> impl Fn() -> StoreError + Send + 'static {
    let id = id.clone();
    move || StoreError::SessionNotFound(id.clone())
}

#[async_trait]
impl Store for RedisStore {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        let id = session.id.clone();
        let raw = codec::encode_session(&session)?;
        let mut con = self.inner.conn.con();
        let created: i64 = self
            .inner
            .call(
                "EVALSHA create",
                self.inner
                    .scripts
                    .create
                    .key(self.inner.key(&id))
                    .key(&self.inner.sessions_key)
                    .arg(raw)
                    .arg(id.as_str())
                    .invoke_async(&mut con),
            )
            .await?;
        if created == 1 {
            tracing::debug!(session_id = %id, "session created in Redis");
            self.inner.seen.put(id, Decoded::new(SessionDoc::new(session)));
            Ok(())
        } else {
            Err(StoreError::SessionExists(id))
        }
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        Ok(self.inner.read(id).await?.map(|s| s.doc.snapshot))
    }

    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        let ids = self.inner.ids().await?;
        let mut all: Vec<SessionSnapshot> =
            self.inner.read_many(&ids).await?.into_iter().flatten().map(|s| s.doc.snapshot).collect();
        transitions::sort_sessions(&mut all);
        Ok(all)
    }

    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        let mut con = self.inner.conn.con();
        let removed: Vec<(String, String)> = self
            .inner
            .call(
                "EVALSHA remove",
                self.inner
                    .scripts
                    .remove
                    .key(self.inner.key(id))
                    .key(&self.inner.sessions_key)
                    .arg(id.as_str())
                    .invoke_async(&mut con),
            )
            .await?;
        self.inner.seen.forget(id);
        // Removed even if it turns out unreadable: the error then says what was lost.
        let removed = codec::decode(id, removed)?;
        if removed.is_some() {
            tracing::debug!(session_id = %id, "session removed from Redis");
        }
        Ok(removed.map(|s| s.doc.snapshot))
    }

    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError> {
        let ids = self.inner.ids().await?;
        let docs = self.inner.read_many(&ids).await?;
        let mut removed = Vec::new();
        for (id, found) in ids.iter().zip(docs) {
            let Some(found) = found else { continue };
            if let Some(session) = self.inner.collect(id, found, created_before).await? {
                tracing::debug!(session_id = %id, "inactive session collected");
                removed.push(session);
            }
        }
        removed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(removed)
    }

    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError> {
        let (session, id) = (connection.session_id.clone(), connection.id.clone());
        self.transition(
            &session,
            not_found(&session),
            move |d| transitions::create_connection(d, connection.clone(), token.clone()),
            move |_| Touched::connection(&id),
        )
        .await
    }

    async fn remove_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
    ) -> Result<Connection, StoreError> {
        let (connection, touched) = (connection.clone(), connection.clone());
        self.transition(
            session,
            not_found(session),
            move |d| transitions::remove_connection(d, &connection),
            move |_| Touched::connection(&touched),
        )
        .await
    }

    async fn activate_connection(
        &self,
        session: &SessionId,
        token: &TokenId,
        info: ActiveInfo,
    ) -> Result<Connection, StoreError> {
        let token = token.clone();
        self.transition(
            session,
            || StoreError::TokenNotFound,
            move |d| transitions::activate_connection(d, &token, info.clone()),
            |c| Touched { session: true, connections: vec![c.id.clone()] },
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
        let (connection, touched) = (connection.clone(), connection.clone());
        self.transition(
            session,
            not_found(session),
            move |d| transitions::update_connection(d, &connection, role, record),
            move |u| if u.changed { Touched::connection(&touched) } else { Touched::default() },
        )
        .await
    }

    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError> {
        let (connection, touched) = (connection.clone(), connection.clone());
        self.transition(
            session,
            not_found(session),
            move |d| transitions::add_publisher(d, &connection, publisher.clone()),
            move |_| Touched::connection(&touched),
        )
        .await
    }

    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        let stream = stream.clone();
        self.transition(
            session,
            not_found(session),
            move |d| transitions::remove_publisher(d, &stream),
            |u| {
                let mut connections = u.subscribers.clone();
                connections.push(u.owner.clone());
                Touched { session: false, connections }
            },
        )
        .await
    }

    async fn add_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        subscriber: Subscriber,
    ) -> Result<(), StoreError> {
        let (connection, touched) = (connection.clone(), connection.clone());
        self.transition(
            session,
            not_found(session),
            move |d| transitions::add_subscriber(d, &connection, subscriber.clone()),
            move |_| Touched::connection(&touched),
        )
        .await
    }

    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        let (connection, touched) = (connection.clone(), connection.clone());
        let stream = stream.clone();
        self.transition(
            session,
            not_found(session),
            move |d| transitions::remove_subscriber(d, &connection, &stream),
            move |_| Touched::connection(&touched),
        )
        .await
    }

    async fn set_recording(&self, session: &SessionId, recording: bool) -> Result<bool, StoreError> {
        self.transition(
            session,
            not_found(session),
            move |d| transitions::set_recording(d, recording),
            move |was| if *was == recording { Touched::default() } else { Touched::session() },
        )
        .await
    }

    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        let stream = stream.clone();
        self.transition(
            session,
            not_found(session),
            move |d| transitions::set_stream_property(d, &stream, property.clone()),
            Touched::connection,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
