//! `RedisStore` against a real `redis-server` that each test starts on a free loopback port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu_core::id::{IdGenerator, SequentialIds, SessionId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, ConnectionProperties, Session, SessionProperties};

use super::RedisStore;
use crate::store::{Store, StoreError};

/// A `redis-server` child process without persistence, killed on drop.
pub(crate) struct RedisProcess {
    child: Option<Child>,
    port: u16,
}

impl RedisProcess {
    /// Starts one on a free loopback port.
    pub(crate) fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut p = Self { child: None, port };
        p.restart();
        p
    }

    /// `redis://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain connection to it, to read or change what the store keeps behind its back.
    async fn raw(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// Kills the server (its data is gone).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().map(|c| c.id().to_string()).unwrap();
        let status = Command::new("kill").args([format!("-{signal}"), pid]).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Starts a fresh server on the same port.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let child = Command::new(&bin)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {bin} (Debian package redis-server, see scripts/install-deps): {e}")
            });
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn info() -> ActiveInfo {
    ActiveInfo::new(20, Some("127.0.0.1".into()), "test".into(), String::new())
}

/// A session with one pending connection usable with the returned token.
async fn session_with_token(store: &dyn Store, ids: &SequentialIds) -> (SessionId, TokenId) {
    let sid = ids.session_id();
    store.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await.unwrap();
    let token = ids.token_id();
    let conn = Connection::pending(ids.connection_id(), sid.clone(), 2, ConnectionProperties::default(), None);
    store.create_connection(conn, token.clone()).await.unwrap();
    (sid, token)
}

#[tokio::test]
async fn redis_store_conforms() {
    let redis = RedisProcess::start();
    let store = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    crate::store::conformance::run(&store).await;
}

#[tokio::test]
async fn two_stores_see_each_others_writes_and_prefixes_isolate() {
    let redis = RedisProcess::start();
    let a = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let b = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let other = RedisStore::connect(&redis.url(), "other:").await.unwrap();
    let ids = SequentialIds::default();

    let (sid, token) = session_with_token(&a, &ids).await;
    let seen = b.session(&sid).await.unwrap().expect("b sees the session a created");
    assert_eq!(seen.connections.len(), 1);
    assert_eq!(
        b.create_session(Session::new(sid.clone(), 3, SessionProperties::default())).await,
        Err(StoreError::SessionExists(sid.clone()))
    );
    let active = b.activate_connection(&sid, &token, info()).await.unwrap();
    assert_eq!(a.session(&sid).await.unwrap().unwrap().connection(&active.id).unwrap().ip(), Some("127.0.0.1"));
    assert_eq!(a.activate_connection(&sid, &token, info()).await, Err(StoreError::TokenNotFound));
    assert_eq!(b.sessions().await.unwrap().len(), 1);

    assert!(other.session(&sid).await.unwrap().is_none(), "another prefix is another cluster");
    assert!(other.sessions().await.unwrap().is_empty());

    assert_eq!(b.remove_session(&sid).await.unwrap().unwrap().session.id, sid);
    assert!(a.session(&sid).await.unwrap().is_none());
    assert!(a.sessions().await.unwrap().is_empty());
}

/// A master transitions a session from what it last saw; when another master changed the session
/// meanwhile, the write is refused and applied again on the session as it is now: nothing of
/// either master is lost, a refusal of the stale view is checked against Redis, and the creation
/// order of the connections survives.
#[tokio::test]
async fn a_stale_view_of_a_session_is_corrected() {
    let redis = RedisProcess::start();
    let a = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let b = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(&a, &ids).await;
    let pending = |ids: &SequentialIds| {
        Connection::pending(ids.connection_id(), sid.clone(), 3, ConnectionProperties::default(), None)
    };

    // b adds a connection and a publisher; a (whose view predates both) adds one after.
    let by_b = pending(&ids);
    b.create_connection(by_b.clone(), ids.token_id()).await.unwrap();
    let by_a = pending(&ids);
    a.create_connection(by_a.clone(), ids.token_id()).await.unwrap();
    // a changes b's connection, which its view did not hold.
    let update = a.update_connection(&sid, &by_b.id, Some(openvidu_core::model::OpenViduRole::Moderator), None);
    assert!(update.await.unwrap().changed);
    // Nothing changed since a's last write: one round trip, no re-read needed, still right.
    assert!(!a.update_connection(&sid, &by_b.id, None, None).await.unwrap().changed);
    // b, whose view is now stale, removes a's connection.
    b.remove_connection(&sid, &by_a.id).await.unwrap();
    // Both see the same: the first connection, then b's (a moderator); a's is gone.
    for store in [&a, &b] {
        let s = store.session(&sid).await.unwrap().unwrap();
        let order: Vec<_> = s.connections.iter().map(|c| c.id.clone()).collect();
        assert_eq!(order.len(), 2);
        assert_eq!(order[1], by_b.id);
        assert_eq!(s.connection(&by_b.id).unwrap().properties.role, openvidu_core::model::OpenViduRole::Moderator);
    }
    // A session removed by another master is gone for a stale view too.
    b.remove_session(&sid).await.unwrap();
    assert_eq!(a.set_recording(&sid, true).await, Err(StoreError::SessionNotFound(sid.clone())));
}

/// A write expects a version by its number *and* its writer's tag (what lets a round expect the
/// version an earlier round still in flight is to make): another master's version with the number
/// this master expects is still stale, so a connection it removed is not written back.
#[tokio::test]
async fn a_version_of_the_expected_number_by_another_writer_is_stale() {
    let redis = RedisProcess::start();
    let a = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let b = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(&a, &ids).await;
    let c = Connection::pending(ids.connection_id(), sid.clone(), 3, ConnectionProperties::default(), None);
    a.create_connection(c.clone(), ids.token_id()).await.unwrap();
    let key = format!("ov:session:{sid}");
    let mut raw = redis.raw().await;
    let expected_by_a: u64 = ::redis::cmd("HGET").arg(&key).arg("v").query_async(&mut raw).await.unwrap();

    // b removes the connection; its version is then given the number a expects.
    b.remove_connection(&sid, &c.id).await.unwrap();
    let _: () = ::redis::cmd("HSET").arg(&key).arg("v").arg(expected_by_a).query_async(&mut raw).await.unwrap();

    // a's view still holds the connection: its change is found stale and refused on the session
    // as it is.
    let update = a.update_connection(&sid, &c.id, Some(openvidu_core::model::OpenViduRole::Moderator), None).await;
    assert_eq!(update.map(|u| u.changed), Err(StoreError::ConnectionNotFound(c.id.clone())));
    let now = b.session(&sid).await.unwrap().unwrap();
    assert!(now.connection(&c.id).is_none(), "a wrote back a connection b had removed");
    // And a goes on from the session as it is.
    let next = Connection::pending(ids.connection_id(), sid.clone(), 4, ConnectionProperties::default(), None);
    a.create_connection(next.clone(), ids.token_id()).await.unwrap();
    assert!(b.session(&sid).await.unwrap().unwrap().connection(&next.id).is_some());
}

#[tokio::test]
async fn the_write_script_sets_and_deletes_more_fields_than_one_slice() {
    let redis = RedisProcess::start();
    let mut raw = redis.raw().await;
    let script = ::redis::Script::new(include_str!("write.lua"));
    let key = "ov:session:many";
    // More values than Lua's unpack takes at once (about 8000), in both directions.
    let (sets, deletes) = (4_101, 8_101);
    let mut existing = ::redis::cmd("HSET");
    existing.arg(key).arg("v").arg(7).arg("w").arg("old");
    for i in 0..deletes {
        existing.arg(format!("gone{i}")).arg("x");
    }
    let () = existing.query_async(&mut raw).await.unwrap();
    let write = |version: u64, expected_tag: &str| {
        let mut inv = script.key(key);
        inv.arg(version).arg(expected_tag).arg("new").arg(sets);
        for i in 0..sets {
            inv.arg(format!("f{i}")).arg(format!("value {i}"));
        }
        for i in 0..deletes {
            inv.arg(format!("gone{i}"));
        }
        inv
    };

    // Another version than the hash's: refused, with the hash as it is.
    let stale: Vec<String> = write(7, "other").invoke_async(&mut raw).await.unwrap();
    assert_eq!(stale[0], "stale");
    assert_eq!(stale.len(), 1 + 2 * (deletes + 2));

    let done: Vec<String> = write(7, "old").invoke_async(&mut raw).await.unwrap();
    assert_eq!(done, ["ok"]);
    let all: std::collections::HashMap<String, String> =
        ::redis::cmd("HGETALL").arg(key).query_async(&mut raw).await.unwrap();
    assert_eq!(all.len(), sets + 2, "every field set, every deleted one gone, and v and w");
    assert_eq!(all["v"], "8");
    assert_eq!(all["w"], "new");
    assert_eq!(all["f0"], "value 0");
    assert_eq!(all[&format!("f{}", sets - 1)], format!("value {}", sets - 1));

    // Nothing to set or delete: the version is only checked, and stays.
    let noop: Vec<String> = script.key(key).arg(8).arg("new").arg("newer").arg(0).invoke_async(&mut raw).await.unwrap();
    assert_eq!(noop, ["ok"]);
    let (v, w): (String, String) =
        ::redis::cmd("HMGET").arg(key).arg("v").arg("w").query_async(&mut raw).await.unwrap();
    assert_eq!((v.as_str(), w.as_str()), ("8", "new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_activates_once_across_masters() {
    let redis = RedisProcess::start();
    let a: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let ids = SequentialIds::default();
    let (sid, token) = session_with_token(a.as_ref(), &ids).await;

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (sid, token) = (sid.clone(), token.clone());
            tokio::spawn(async move { store.activate_connection(&sid, &token, info()).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, StoreError::TokenNotFound),
        }
    }
    assert_eq!(ok, 1, "exactly one activation wins");
    assert_eq!(a.session(&sid).await.unwrap().unwrap().active_connections().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_recording_claim_wins_across_masters() {
    let redis = RedisProcess::start();
    let a: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(a.as_ref(), &ids).await;

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let sid = sid.clone();
            tokio::spawn(async move { store.set_recording(&sid, true).await })
        })
        .collect();
    let mut claims = 0;
    for t in tasks {
        if !t.await.unwrap().unwrap() {
            claims += 1;
        }
    }
    assert_eq!(claims, 1, "exactly one set_recording(true) sees it free");
    assert!(b.session(&sid).await.unwrap().unwrap().session.recording);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_session_all_land() {
    let redis = RedisProcess::start();
    let a: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let ids = Arc::new(SequentialIds::default());
    let sid = ids.session_id();
    a.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await.unwrap();

    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (sid, ids) = (sid.clone(), ids.clone());
            tokio::spawn(async move {
                let conn = Connection::pending(ids.connection_id(), sid, 2, ConnectionProperties::default(), None);
                store.create_connection(conn, ids.token_id()).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.session(&sid).await.unwrap().unwrap().connections.len(), 64, "no update is lost");
}

/// `EVALSHA` calls Redis has served so far.
async fn evalsha_calls(url: &str) -> u64 {
    let client = ::redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = ::redis::cmd("INFO").arg("commandstats").query_async(&mut con).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Concurrent transitions of one session on one master are committed in groups: fewer writes
/// than calls, every call answered with its own outcome (a refusal among them refuses only
/// itself), and Redis holds the connections in the order the master created them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transitions_of_a_session_are_committed_in_groups() {
    let redis = RedisProcess::start();
    let store = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let ids = Arc::new(SequentialIds::default());
    let sid = ids.session_id();
    store.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await.unwrap();
    let before = evalsha_calls(&redis.url()).await;

    const CALLS: usize = 64;
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let (store, sid, ids) = (store.clone(), sid.clone(), ids.clone());
            tokio::spawn(async move {
                if i % 8 == 7 {
                    // Refused: no such connection.
                    let r = store.remove_connection(&sid, &ids.connection_id()).await;
                    assert!(matches!(r, Err(StoreError::ConnectionNotFound(_))), "{r:?}");
                    None
                } else {
                    let conn = Connection::pending(ids.connection_id(), sid, 2, ConnectionProperties::default(), None);
                    store.create_connection(conn.clone(), ids.token_id()).await.unwrap();
                    Some(conn.id)
                }
            })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await.unwrap());
    }
    let writes = evalsha_calls(&redis.url()).await - before;
    assert!(writes < CALLS as u64, "{writes} writes for {CALLS} calls: nothing was grouped");

    // Read by another master: every creation landed, in the order of this master's view.
    let other = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let stored = other.session(&sid).await.unwrap().unwrap();
    assert_eq!(stored.connections.len(), created.len());
    let mine = store.inner.seen.take(&sid).expect("the last view is kept");
    assert_eq!(stored, mine.doc.snapshot, "Redis holds the connections in creation order");
}

/// Redis forgets its scripts when it restarts (or on `SCRIPT FLUSH`): the write script is loaded
/// again and the transition goes through.
#[tokio::test]
async fn a_forgotten_script_is_loaded_again() {
    let redis = RedisProcess::start();
    let store = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(&store, &ids).await;
    let mut con = redis.raw().await;
    let () = ::redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut con).await.unwrap();
    let conn = Connection::pending(ids.connection_id(), sid.clone(), 3, ConnectionProperties::default(), None);
    store.create_connection(conn.clone(), ids.token_id()).await.unwrap();
    let stored = store.session(&sid).await.unwrap().unwrap();
    assert_eq!(stored.connections.len(), 2);
    assert_eq!(stored.connections[1].id, conn.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_unavailable_then_recovers() {
    let mut redis = RedisProcess::start();
    let store = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(&store, &ids).await;

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = store.session(&sid).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        let r = store.set_recording(&sid, true).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "failed fast: {:?}", started.elapsed());
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = ids.session_id();
    loop {
        match store.create_session(Session::new(fresh.clone(), 1, SessionProperties::default())).await {
            Ok(()) => break,
            Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "not yet reconnected");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    assert!(store.session(&fresh).await.unwrap().is_some());
    assert!(store.session(&sid).await.unwrap().is_none(), "the restarted Redis kept nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_times_out_then_recovers() {
    let redis = RedisProcess::start();
    let store = Arc::new(RedisStore::connect(&redis.url(), "ov:").await.unwrap());
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(store.as_ref(), &ids).await;

    redis.signal("STOP");
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (store, sid) = (store.clone(), sid.clone());
            tokio::spawn(async move { store.set_recording(&sid, true).await })
        })
        .collect();
    for c in calls {
        let r = c.await.unwrap();
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "no call hangs: {:?}", started.elapsed());

    redis.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.session(&sid).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A write cut off by the timeout may still land when Redis wakes up (as with any store
    // behind a timeout): the flag is set either way, and the store works again.
    assert!(store.set_recording(&sid, true).await.is_ok());
    assert!(store.session(&sid).await.unwrap().unwrap().session.recording);
    assert_eq!(store.set_recording(&sid, false).await, Ok(true));
}

#[tokio::test]
async fn an_unreachable_redis_fails_at_connect() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let r = RedisStore::connect(&format!("redis://127.0.0.1:{port}"), "ov:").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(7), "{:?}", started.elapsed());
    assert!(matches!(RedisStore::connect("http://nope", "ov:").await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn replies_of_the_wrong_shape_are_errors() {
    let redis = RedisProcess::start();
    let store = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let mut raw = redis.raw().await;
    let ids = SequentialIds::default();

    let wrong_type = ids.session_id();
    let _: () =
        ::redis::cmd("SET").arg(format!("ov:session:{wrong_type}")).arg("x").query_async(&mut raw).await.unwrap();
    assert!(matches!(store.session(&wrong_type).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.set_recording(&wrong_type, true).await, Err(StoreError::Unavailable(_))));

    let not_json = ids.session_id();
    let _: () = ::redis::cmd("HSET")
        .arg(format!("ov:session:{not_json}"))
        .arg("v")
        .arg(1)
        .arg("s")
        .arg("{not json")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(store.session(&not_json).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        store.add_publisher(&not_json, &ids.connection_id(), dummy_publisher(&ids)).await,
        Err(StoreError::Unavailable(_))
    ));

    let bad_version = ids.session_id();
    let _: () = ::redis::cmd("HSET")
        .arg(format!("ov:session:{bad_version}"))
        .arg("v")
        .arg("one")
        .arg("s")
        .arg("{}")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(store.session(&bad_version).await, Err(StoreError::Unavailable(_))));

    let _: () = ::redis::cmd("SADD").arg("ov:sessions").arg("not an id").query_async(&mut raw).await.unwrap();
    assert!(matches!(store.sessions().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.remove_inactive_sessions(u64::MAX).await, Err(StoreError::Unavailable(_))));
}

/// A session whose key Redis refuses at write time (another type, set behind the store's back
/// after the store last saw it) fails alone: the other session of the same round is written.
#[tokio::test]
async fn a_refused_session_fails_alone_in_its_round() {
    let redis = RedisProcess::start();
    let store = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    let mut raw = redis.raw().await;
    let ids = SequentialIds::default();
    let (good, bad) = (ids.session_id(), ids.session_id());
    for sid in [&good, &bad] {
        store.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await.unwrap();
        // Written once, so that the store holds its view and writes without reading first.
        store.set_recording(sid, true).await.unwrap();
    }
    let _: () = ::redis::cmd("DEL").arg(format!("ov:session:{bad}")).query_async(&mut raw).await.unwrap();
    let _: () = ::redis::cmd("SET").arg(format!("ov:session:{bad}")).arg("x").query_async(&mut raw).await.unwrap();

    // Polled together on this (current-thread) runtime: both are queued before the committing
    // task runs, so they make one round.
    let (g, b) = tokio::join!(store.set_recording(&good, false), store.set_recording(&bad, false));
    assert!(matches!(g, Ok(true)), "{g:?}");
    assert!(matches!(b, Err(StoreError::Unavailable(_))), "{b:?}");

    let other = RedisStore::connect(&redis.url(), "ov:").await.unwrap();
    assert!(!other.session(&good).await.unwrap().unwrap().session.recording, "the good session was written");
    // The refused one stays refused (read anew), and the good one goes on.
    assert!(matches!(store.set_recording(&bad, true).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.set_recording(&good, true).await, Ok(false)));
}

fn dummy_publisher(ids: &SequentialIds) -> openvidu_core::model::Publisher {
    let owner = ids.connection_id();
    openvidu_core::model::Publisher::new(
        ids.stream_id(None, &owner),
        1,
        openvidu_core::model::MediaOptions::new(true, false, None),
    )
}

#[test]
fn the_setting_is_read_and_checked() {
    use clap::Parser;
    let parse = |extra: &[&str]| {
        let mut args = vec!["openvidu-server", "--openvidu-secret", "S"];
        args.extend_from_slice(extra);
        crate::config::Config::try_from(crate::config::Args::try_parse_from(args).unwrap())
    };
    assert_eq!(parse(&[]).unwrap().ha_redis_url, None);
    assert_eq!(
        parse(&["--openvidu-ha-redis-url", "redis://127.0.0.1:7000/1"]).unwrap().ha_redis_url.as_deref(),
        Some("redis://127.0.0.1:7000/1")
    );
    let e = parse(&["--openvidu-ha-redis-url", "http://127.0.0.1:7000"]).unwrap_err().to_string();
    assert!(e.contains("OPENVIDU_HA_REDIS_URL"), "{e}");
    for good in ["rediss://127.0.0.1:7000/#insecure", "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/1"] {
        assert!(parse(&["--openvidu-ha-redis-url", good]).is_ok(), "{good}");
    }
    let e = parse(&["--openvidu-ha-redis-url", "redis+sentinel://127.0.0.1:26379"]).unwrap_err().to_string();
    assert!(e.contains("OPENVIDU_HA_REDIS_URL") && e.contains("master name"), "{e}");
}

/// A `redis-server` with these extra arguments on `port` (`--sentinel` for a Sentinel), in a
/// folder of its own: a replica writes the master's data to `dump.rdb` in its folder, and any
/// server loads the `dump.rdb` of its folder at start.
fn spawn_redis(port: u16, extra: &[&str]) -> RedisChild {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    // A Sentinel reads (and rewrites) a configuration file, which must come first.
    args.extend(extra.iter().filter(|a| a.ends_with(".conf")).map(|a| a.to_string()));
    args.extend(
        ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from),
    );
    args.extend(["--dir".to_owned(), dir.path().to_string_lossy().into_owned()]);
    args.extend(extra.iter().filter(|a| !a.ends_with(".conf")).map(|a| a.to_string()));
    let child = Command::new(&bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    // Port 0: no plain TCP port to wait for (the caller waits for its TLS port).
    while port != 0 && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "redis-server {args:?} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    RedisChild(child, dir)
}

/// A child process killed on drop, and its folder.
struct RedisChild(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Through a Sentinel (`redis+sentinel://`): the store finds the master; when the master dies,
/// the Sentinel promotes the replica and the store follows it by itself, with the data it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover() {
    let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    let mut master = Some(spawn_redis(master_port, &[]));
    let _replica = spawn_redis(replica_port, &["--replicaof", "127.0.0.1", &master_port.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds mymaster 1000\n\
             sentinel failover-timeout mymaster 5000\n"
        ),
    )
    .unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let _sentinel = spawn_redis(sentinel_port, &[&conf, "--sentinel"]);

    let url = format!("redis+sentinel://127.0.0.1:{sentinel_port}/mymaster");
    let store = RedisStore::connect(&url, "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, token) = session_with_token(&store, &ids).await;
    // Wait until the replica has it (replication is asynchronous).
    let replica = ::redis::Client::open(format!("redis://127.0.0.1:{replica_port}")).unwrap();
    let mut on_replica = replica.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 =
            ::redis::cmd("EXISTS").arg(format!("ov:session:{sid}")).query_async(&mut on_replica).await.unwrap();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never got the session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The master dies: calls fail (Unavailable) until the Sentinel promotes the replica.
    drop(master.take());
    let died = Instant::now();
    let deadline = died + Duration::from_secs(30);
    loop {
        match store.set_recording(&sid, true).await {
            Ok(_) => break,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(Instant::now() < deadline, "the store did not follow the failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("store back on the promoted replica {:?} after the master died", died.elapsed());
    let snapshot = store.session(&sid).await.unwrap().expect("the session survived the failover");
    assert!(snapshot.session.recording);
    assert_eq!(store.activate_connection(&sid, &token, info()).await.map(|c| c.session_id), Ok(sid.clone()));
}

#[tokio::test]
async fn a_server_whose_redis_is_unreachable_does_not_start() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = crate::Server::builder()
        .https(false)
        .configure(|c| c.ha_redis_url = Some(format!("redis://127.0.0.1:{port}")))
        .start()
        .await;
    match started {
        Ok(_) => panic!("started without its Redis"),
        Err(e) => assert!(e.to_string().starts_with("OPENVIDU_HA_REDIS_URL"), "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_share_sessions() {
    let redis = RedisProcess::start();
    let start =
        || crate::Server::builder().https(false).secret("S").configure(|c| c.ha_redis_url = Some(redis.url())).start();
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    let http = reqwest::Client::new();
    let create = |server: &crate::RunningServer| {
        http.post(format!("{}/openvidu/api/sessions", server.url()))
            .basic_auth("OPENVIDUAPP", Some("S"))
            .json(&serde_json::json!({"customSessionId": "shared"}))
            .send()
    };
    assert_eq!(create(&a).await.unwrap().status(), 200);
    let got = http
        .get(format!("{}/openvidu/api/sessions/shared", b.url()))
        .basic_auth("OPENVIDUAPP", Some("S"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200, "b serves the session a created");
    assert_eq!(create(&b).await.unwrap().status(), 409, "the id is taken cluster-wide");
}

/// `rediss://`: the store talks TLS to a Redis serving TLS only (`#insecure`: the test's
/// certificate is self-signed).
#[tokio::test]
async fn the_store_speaks_tls_with_rediss() {
    let dir = tempfile::tempdir().unwrap();
    let tls = crate::tls::TlsMaterial::self_signed(&[]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &tls.cert_pem).unwrap();
    std::fs::write(&key, &tls.key_pem).unwrap();
    let port = free_port();
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let _redis = spawn_redis(
        0,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-auth-clients",
            "no",
        ],
    );
    // `--port 0` turns plain TCP off: spawn_redis waited for nothing, so wait for the TLS port.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "no TLS port");
        std::thread::sleep(Duration::from_millis(20));
    }
    let store = RedisStore::connect(&format!("rediss://127.0.0.1:{port}/#insecure"), "ov:").await.unwrap();
    let ids = SequentialIds::default();
    let (sid, _) = session_with_token(&store, &ids).await;
    assert_eq!(store.session(&sid).await.unwrap().unwrap().connections.len(), 1);
    let plain_url = format!("redis://127.0.0.1:{port}");
    let plain = RedisStore::connect_with_timeout(&plain_url, "ov:", Duration::from_millis(300)).await;
    assert!(matches!(plain, Err(StoreError::Unavailable(_))), "plain TCP to a TLS port fails cleanly");
}
