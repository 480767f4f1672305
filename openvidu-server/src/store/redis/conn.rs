//! The connection every Redis user of a master shares: to one Redis server (`redis://`,
//! `rediss://`), or to the master a group of Redis Sentinels names (`redis+sentinel://`), followed
//! across Sentinel failovers.
//!
//! The Sentinel form is `redis+sentinel://[user:password@]host:port[,host:port…]/<master
//! name>[/<db>]`: the addresses are the Sentinels', the credentials and database the Redis
//! master's. The master is found through the `redis` crate's Sentinel client; a watcher asks the
//! Sentinels again every [`FOLLOW_EVERY`] and, when they name another master (a failover),
//! connects to it and swaps the connection every caller gets from [`RedisConn::con`].

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::watch;

use crate::store::StoreError;

/// How often the Sentinels are asked which server is the master.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Where Redis is, from `OPENVIDU_HA_REDIS_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RedisTarget {
    /// One server.
    Direct(String),
    /// The master named `master` by these Sentinels (`host:port` each).
    Sentinel {
        /// The Sentinels' addresses.
        sentinels: Vec<String>,
        /// The master's name in the Sentinels' configuration.
        master: String,
        /// The master's user, if any.
        username: Option<String>,
        /// The master's password, if any.
        password: Option<String>,
        /// The database number.
        db: i64,
    },
}

impl RedisTarget {
    /// Parses a `redis://`, `rediss://` or `redis+sentinel://` URL.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Ok(Self::Direct(url.to_owned()));
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
                None => (Some(a.to_owned()), None),
            },
        };
        let (hosts, path) = rest.split_once('/').ok_or("a Sentinel URL needs /<master name> after the hosts")?;
        let sentinels: Vec<String> =
            hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
        if sentinels.is_empty() {
            return Err("a Sentinel URL needs at least one host:port".into());
        }
        for s in &sentinels {
            let port = s.rsplit_once(':').map(|(_, p)| p).ok_or_else(|| format!("Sentinel {s:?} has no port"))?;
            port.parse::<u16>().map_err(|_| format!("Sentinel {s:?} has a bad port"))?;
        }
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default().to_owned();
        if master.is_empty() {
            return Err("a Sentinel URL needs /<master name> after the hosts".into());
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(n) => n.parse().map_err(|_| format!("bad database number {n:?}"))?,
        };
        Ok(Self::Sentinel { sentinels, master, username, password, db })
    }
}

/// A connection to Redis shared by the store and the cluster; cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisConn {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<Current>,
    changed: watch::Sender<u64>,
}

#[derive(Clone)]
struct Current {
    client: Client,
    con: ConnectionManager,
    addr: ConnectionAddr,
}

impl RedisConn {
    /// Connects to `url` (every command bounded by `timeout`). Fails with `Unavailable` when the
    /// URL is bad or Redis (or every Sentinel) cannot be reached now; once connected, the
    /// connection reconnects by itself (and follows the master with Sentinels).
    pub(crate) async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let target = RedisTarget::parse(url).map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let (client, sentinel) = match &target {
            RedisTarget::Direct(url) => {
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?
                    .set_tcp_settings(nodelay());
                let client =
                    Client::open(info).map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
                (client, None)
            }
            RedisTarget::Sentinel { .. } => {
                let mut sentinel = sentinel_client(&target)?;
                let client = bounded(timeout.saturating_mul(3), sentinel.async_get_client())
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("no master from the Sentinels: {e}")))?;
                (client, Some(sentinel))
            }
        };
        let current = connect(client, timeout).await?;
        let (changed, _) = watch::channel(0);
        let conn = Self { inner: Arc::new(Inner { current: RwLock::new(current), changed }) };
        if let Some(sentinel) = sentinel {
            tokio::spawn(follow(Arc::downgrade(&conn.inner), sentinel, timeout));
        }
        Ok(conn)
    }

    fn current(&self) -> Current {
        // Only whole values are stored: a panic elsewhere cannot leave it half-written.
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A handle on the multiplexed connection to the master now.
    pub(crate) fn con(&self) -> ConnectionManager {
        self.current().con
    }

    /// A client for the master now (for dedicated connections: pub/sub).
    pub(crate) fn client(&self) -> Client {
        self.current().client
    }

    /// Changes each time the connection moves to another master.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }
}

fn nodelay() -> ::redis::io::tcp::TcpSettings {
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to each request.
    ::redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

async fn bounded<T>(timeout: Duration, f: impl Future<Output = ::redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

fn sentinel_client(target: &RedisTarget) -> Result<SentinelClient, StoreError> {
    let RedisTarget::Sentinel { sentinels, master, username, password, db } = target else {
        return Err(StoreError::Unavailable("not a Sentinel URL".into()));
    };
    let mut redis_info = RedisConnectionInfo::default().set_db(*db);
    if let Some(u) = username {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = password {
        redis_info = redis_info.set_password(p);
    }
    let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_info).set_tcp_settings(nodelay());
    let urls: Vec<String> = sentinels.iter().map(|s| format!("redis://{s}")).collect();
    SentinelClient::build(urls, master.clone(), Some(node), SentinelServerType::Master)
        .map_err(|e| StoreError::Unavailable(format!("invalid Sentinel URL: {e}")))
}

/// A reconnecting connection to `client`'s server, every command bounded by `timeout`.
async fn connect(client: Client, timeout: Duration) -> Result<Current, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let connect_timeout = timeout.saturating_mul(3);
    let addr = client.get_connection_info().addr().clone();
    match tokio::time::timeout(connect_timeout, ConnectionManager::new_with_config(client.clone(), config)).await {
        Ok(Ok(con)) => Ok(Current { client, con, addr }),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("cannot connect to Redis at {addr}: {e}"))),
        Err(_) => Err(StoreError::Unavailable(format!("cannot connect to Redis at {addr} within {connect_timeout:?}"))),
    }
}

/// Asks the Sentinels for the master every [`FOLLOW_EVERY`]; moves the connection when they
/// name another one. Ends when the last [`RedisConn`] is dropped.
async fn follow(inner: Weak<Inner>, mut sentinel: SentinelClient, timeout: Duration) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = inner.current.read().unwrap_or_else(|p| p.into_inner()).addr.clone();
        let client = match bounded(timeout, sentinel.async_get_client()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "the Sentinels name no master now");
                continue;
            }
        };
        if client.get_connection_info().addr() == &now {
            continue;
        }
        let next = client.get_connection_info().addr().clone();
        match connect(client, timeout).await {
            Ok(current) => {
                *inner.current.write().unwrap_or_else(|p| p.into_inner()) = current;
                inner.changed.send_modify(|n| *n += 1);
                tracing::warn!(from = %now, to = %next, "the Sentinels named another Redis master; moved to it");
            }
            Err(e) => tracing::warn!(to = %next, error = %e, "cannot connect to the new Redis master yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed() {
        assert_eq!(RedisTarget::parse("redis://h:1/0").unwrap(), RedisTarget::Direct("redis://h:1/0".into()));
        assert_eq!(
            RedisTarget::parse("redis+sentinel://u:p@s1:26379, s2:26380/mymaster/2").unwrap(),
            RedisTarget::Sentinel {
                sentinels: vec!["s1:26379".into(), "s2:26380".into()],
                master: "mymaster".into(),
                username: Some("u".into()),
                password: Some("p".into()),
                db: 2,
            }
        );
        assert_eq!(
            RedisTarget::parse("redis+sentinel://:secret@s1:26379/m").unwrap(),
            RedisTarget::Sentinel {
                sentinels: vec!["s1:26379".into()],
                master: "m".into(),
                username: None,
                password: Some("secret".into()),
                db: 0,
            }
        );
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel:///m",
            "redis+sentinel://s1/m",
            "redis+sentinel://s1:x/m",
            "redis+sentinel://s1:1/m/notanumber",
        ] {
            assert!(RedisTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
