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
//! with a Lua compare-and-set on the version. The session as last seen is kept by this master after
//! each write, so a master updating its own sessions makes **one round trip** per call; when
//! another master changed the session meanwhile, the script answers the session as it is now and
//! the transition is applied again (bounded, with jittered backoff under contention). Tasks of one
//! master that update the same session queue on a local lock first, so only masters race each
//! other. Creation and deletion are Lua scripts too. Every Redis command is bounded by a timeout
//! and every failure (refused, timed out, reply of the wrong shape) is
//! [`StoreError::Unavailable`]; the `ConnectionManager` reconnects by itself, so the store works
//! again as soon as Redis is back.

mod codec;
mod conn;

pub(crate) use conn::{RedisConn, RedisTarget};

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use ::redis::{RedisResult, Script};
use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};

use self::codec::Decoded;
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

/// The parts of a session a transition changed, to be written back.
#[derive(Debug, Default)]
struct Touched {
    /// The session itself (not its connections).
    session: bool,
    /// Connections created, changed or removed.
    connections: Vec<ConnectionId>,
}

impl Touched {
    fn session() -> Self {
        Self { session: true, connections: Vec::new() }
    }

    fn connection(id: &ConnectionId) -> Self {
        Self { session: false, connections: vec![id.clone()] }
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
    conn: RedisConn,
    prefix: String,
    sessions_key: String,
    timeout: Duration,
    scripts: Scripts,
    locks: Box<[tokio::sync::Mutex<()>]>,
    seen: Seen,
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
        let conn = RedisConn::open(url, timeout).await?;
        let store = Self {
            conn,
            prefix: prefix.to_owned(),
            sessions_key: format!("{prefix}sessions"),
            timeout,
            scripts: Scripts::new(),
            locks: (0..LOCAL_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            seen: Seen::default(),
        };
        let mut con = store.conn.con();
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
        ids.iter().zip(replies).map(|(id, fields)| codec::decode(id, fields)).collect()
    }

    /// Writes the `touched` parts of `seen` if the session is still at `seen.version`; otherwise
    /// answers the session as it is now (`Err(None)` when it is gone).
    async fn write(
        &self,
        id: &SessionId,
        seen: &mut Decoded,
        touched: &Touched,
    ) -> Result<Result<(), Option<Decoded>>, StoreError> {
        let mut script = self.scripts.write.key(self.key(id));
        script.arg(seen.version.to_string());
        let mut set = Vec::new();
        let mut delete = Vec::new();
        if touched.session {
            set.push((codec::SESSION.to_owned(), codec::encode_session(&seen.doc.snapshot.session)?));
        }
        for cid in &touched.connections {
            let field = codec::connection_field(cid);
            // From the end: a connection just created is the last one.
            match seen.doc.snapshot.connections.iter().rev().find(|c| &c.id == cid) {
                Some(c) => {
                    let seq = *seen.seqs.entry(cid.clone()).or_insert(seen.version + 1);
                    set.push((field, codec::encode_connection(c, seen.doc.token_of(cid), seq)?));
                }
                None => {
                    seen.seqs.remove(cid);
                    delete.push(field);
                }
            }
        }
        script.arg(set.len());
        for (field, value) in &set {
            script.arg(field).arg(value);
        }
        for field in &delete {
            script.arg(field);
        }
        let mut con = self.conn.con();
        let reply: Vec<String> = self.call("EVALSHA write", script.invoke_async(&mut con)).await?;
        match reply.split_first() {
            Some((status, [])) if status == "ok" => {
                if !set.is_empty() || !delete.is_empty() {
                    seen.version += 1;
                }
                Ok(Ok(()))
            }
            Some((status, fields)) if status == "stale" && fields.len() % 2 == 0 => {
                let pairs = fields.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                Ok(Err(codec::decode(id, pairs)?))
            }
            _ => Err(StoreError::Unavailable(format!("session {id}: unexpected reply of the write script"))),
        }
    }

    /// Applies `f` to the session atomically and writes back the parts `touched` names (from
    /// what `f` returned). A missing session is `missing`; an `Err` from
    /// `f` writes nothing.
    ///
    /// `f` runs on the session as this master last saw it, when it has it: one round trip, which
    /// also checks that nobody changed the session meanwhile; if somebody did, `f` runs again on
    /// the session as Redis answered it.
    async fn transition<R: Send>(
        &self,
        id: &SessionId,
        missing: impl Fn() -> StoreError + Send + Sync,
        mut f: impl FnMut(&mut SessionDoc) -> Result<R, StoreError> + Send,
        touched: impl Fn(&R) -> Touched + Send + Sync,
    ) -> Result<R, StoreError> {
        let Ok(_queued) = tokio::time::timeout(self.timeout, self.lock_of(id).lock()).await else {
            tracing::warn!(session_id = %id, "updates of this session are stuck behind a slow Redis");
            return Err(StoreError::Unavailable(format!("session {id}: earlier updates still waiting for Redis")));
        };
        let mut next = self.seen.take(id).map(|seen| (seen, false));
        for attempt in 0..MAX_ATTEMPTS {
            let (mut seen, fresh) = match next.take() {
                Some(s) => s,
                None => match self.read(id).await? {
                    Some(seen) => (seen, true),
                    None => return Err(missing()),
                },
            };
            #[cfg(debug_assertions)]
            let before = seen.doc.clone();
            let out = match f(&mut seen.doc) {
                Ok(out) => out,
                // A refusal of the session as last seen may be stale: ask Redis.
                Err(_) if !fresh => continue,
                Err(e) => return Err(e),
            };
            let parts = touched(&out);
            #[cfg(debug_assertions)]
            check_touched(&before, &seen.doc, &parts);
            match self.write(id, &mut seen, &parts).await? {
                Ok(()) => {
                    self.seen.put(id.clone(), seen);
                    return Ok(out);
                }
                Err(None) => return Err(missing()),
                Err(Some(now)) => {
                    tracing::debug!(session_id = %id, attempt, "session changed concurrently, applying again");
                    if attempt > 0 {
                        backoff(attempt).await;
                    }
                    next = Some((now, true));
                }
            }
        }
        tracing::warn!(session_id = %id, attempts = MAX_ATTEMPTS, "too many concurrent updates of one session");
        Err(StoreError::Unavailable(format!("session {id}: too many concurrent updates ({MAX_ATTEMPTS} attempts)")))
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
    for c in b.connections.iter().chain(&a.connections) {
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
fn not_found(id: &SessionId) -> impl Fn() -> StoreError + Send + Sync + '_ {
    move || StoreError::SessionNotFound(id.clone())
}

#[async_trait]
impl Store for RedisStore {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        let id = session.id.clone();
        let raw = codec::encode_session(&session)?;
        let mut con = self.conn.con();
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
            self.seen.put(id, Decoded { version: 1, doc: SessionDoc::new(session), seqs: HashMap::new() });
            Ok(())
        } else {
            Err(StoreError::SessionExists(id))
        }
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        Ok(self.read(id).await?.map(|s| s.doc.snapshot))
    }

    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        let ids = self.ids().await?;
        let mut all: Vec<SessionSnapshot> =
            self.read_many(&ids).await?.into_iter().flatten().map(|s| s.doc.snapshot).collect();
        transitions::sort_sessions(&mut all);
        Ok(all)
    }

    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        let mut con = self.conn.con();
        let removed: Vec<(String, String)> = self
            .call(
                "EVALSHA remove",
                self.scripts.remove.key(self.key(id)).key(&self.sessions_key).arg(id.as_str()).invoke_async(&mut con),
            )
            .await?;
        self.seen.forget(id);
        // Removed even if it turns out unreadable: the error then says what was lost.
        let removed = codec::decode(id, removed)?;
        if removed.is_some() {
            tracing::debug!(session_id = %id, "session removed from Redis");
        }
        Ok(removed.map(|s| s.doc.snapshot))
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
        let (session, id) = (connection.session_id.clone(), connection.id.clone());
        self.transition(
            &session,
            not_found(&session),
            |d| transitions::create_connection(d, connection.clone(), token.clone()),
            |_| Touched::connection(&id),
        )
        .await
    }

    async fn remove_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
    ) -> Result<Connection, StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::remove_connection(d, connection),
            |_| Touched::connection(connection),
        )
        .await
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
        self.transition(
            session,
            not_found(session),
            |d| transitions::update_connection(d, connection, role, record),
            |u| if u.changed { Touched::connection(connection) } else { Touched::default() },
        )
        .await
    }

    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::add_publisher(d, connection, publisher.clone()),
            |_| Touched::connection(connection),
        )
        .await
    }

    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::remove_publisher(d, stream),
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
        self.transition(
            session,
            not_found(session),
            |d| transitions::add_subscriber(d, connection, subscriber.clone()),
            |_| Touched::connection(connection),
        )
        .await
    }

    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::remove_subscriber(d, connection, stream),
            |_| Touched::connection(connection),
        )
        .await
    }

    async fn set_recording(&self, session: &SessionId, recording: bool) -> Result<bool, StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::set_recording(d, recording),
            |was| if *was == recording { Touched::default() } else { Touched::session() },
        )
        .await
    }

    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        self.transition(
            session,
            not_found(session),
            |d| transitions::set_stream_property(d, stream, property.clone()),
            Touched::connection,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
