//! Group commit: the one task per store that writes the queued transitions of every session.
//!
//! Each round takes everything queued ([`Batches::take_all`]), applies each session's group in
//! queue order to the session as this master last saw it (sessions it has not seen are read
//! first, all in one pipeline), then sends one compare-and-set per session, all in **one
//! pipeline**: N concurrent calls cost one round trip to Redis instead of N, whatever sessions
//! they touch. A session another master changed meanwhile answers its current hash; its group
//! goes back to the front of the queue and is applied again to that hash in the next round
//! (bounded by [`MAX_ATTEMPTS`]). While a round waits for Redis, new calls queue up for the next
//! one, so the busier the store, the bigger the groups.

use std::sync::Arc;

use ::redis::{ErrorKind, RedisResult, ServerErrorKind};
use openvidu_core::id::SessionId;

use super::batch::{Group, Touched, fail, fail_missing};
use super::codec::{self, Decoded};
use super::{Inner, MAX_ATTEMPTS};
use crate::store::StoreError;

/// A session's group on its way to Redis.
struct Write {
    id: SessionId,
    ops: Group,
    view: Decoded,
    /// Whether the write changes anything (else it only checks the version).
    changes: bool,
}

/// If the committing task unwinds: lets the next call start another, and answers what was queued
/// (dropped transitions answer `Unavailable`) instead of leaving it waiting.
struct Running<'a>(&'a Inner);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            drop(self.0.batches.stopped());
        }
    }
}

impl Inner {
    /// Commits rounds until nothing is queued.
    pub(super) async fn commit_queued(self: Arc<Self>) {
        let _running = Running(&self);
        while let Some(round) = self.batches.take_all() {
            if let Err(e) = self.commit_round(round).await {
                // What was queued meanwhile waited behind a failing Redis: it fails now too, so
                // that no caller waits much longer than one command timeout for a dead Redis.
                for ops in self.batches.drain() {
                    fail(ops, &e);
                }
            }
        }
    }

    /// One round: every group answered, retried in the next round, or failed. `Err` when Redis
    /// itself failed (every group of the round has been answered with that error).
    async fn commit_round(&self, round: Vec<(SessionId, Group)>) -> Result<(), StoreError> {
        let mut views = Vec::with_capacity(round.len());
        let mut unseen = Vec::new();
        for (id, ops) in round {
            match self.seen.take(&id) {
                Some(view) => views.push((id, ops, view, false)),
                None => unseen.push((id, ops)),
            }
        }
        if !unseen.is_empty() {
            let ids: Vec<SessionId> = unseen.iter().map(|(id, _)| id.clone()).collect();
            match self.read_each(&ids).await {
                Ok(read) => {
                    for ((id, ops), view) in unseen.into_iter().zip(read) {
                        match view {
                            Ok(Some(view)) => views.push((id, ops, view, true)),
                            Ok(None) => fail_missing(ops),
                            Err(e) => fail(ops, &e),
                        }
                    }
                }
                Err(e) => {
                    for (_, ops) in unseen {
                        fail(ops, &e);
                    }
                    for (id, ops, view, _) in views {
                        self.seen.put(id, view);
                        fail(ops, &e);
                    }
                    return Err(e);
                }
            }
        }

        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        let mut writes = Vec::with_capacity(views.len());
        for (id, mut ops, mut view, fresh) in views {
            #[cfg(debug_assertions)]
            let before = view.doc.clone();
            let mut parts = Touched::default();
            for op in ops.iter_mut() {
                // A refusal changed nothing; whether it stands is settled by the write below.
                if let Ok(touched) = op.apply(&mut view.doc) {
                    parts.merge(touched);
                }
            }
            #[cfg(debug_assertions)]
            super::check_touched(&before, &view.doc, &parts);
            if fresh && parts.is_empty() {
                // Nothing to write, and the session was just read: it is current.
                self.seen.put(id, view);
                for op in ops {
                    op.finish(None);
                }
                continue;
            }
            // Also when nothing changed on a session as last seen: the version check confirms
            // that the refusals and no-ops were decided on the current session.
            match self.write_cmd(&id, &mut view, &parts) {
                Ok(cmd) => {
                    pipe.add_command(cmd);
                    writes.push(Write { id, ops, view, changes: !parts.is_empty() });
                }
                Err(e) => fail(ops, &e),
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() > 1 {
            tracing::trace!(sessions = writes.len(), "group commit");
        }
        let mut con = self.conn.con();
        let sent: Result<Vec<RedisResult<Vec<String>>>, StoreError> =
            self.call("EVALSHA write (pipeline)", pipe.query_async(&mut con)).await;
        let replies = match sent {
            Ok(replies) if replies.len() == writes.len() => replies,
            other => {
                let e = other.err().unwrap_or_else(|| {
                    StoreError::Unavailable(format!("Redis answered a pipeline of {} writes wrongly", writes.len()))
                });
                for w in writes {
                    fail(w.ops, &e);
                }
                return Err(e);
            }
        };

        let mut reload = false;
        for (w, reply) in writes.into_iter().zip(replies) {
            let Write { id, ops, mut view, changes } = w;
            match reply {
                Ok(reply) => match reply.split_first() {
                    Some((status, [])) if status == "ok" => {
                        if changes {
                            view.version += 1;
                        }
                        self.seen.put(id, view);
                        for op in ops {
                            op.finish(None);
                        }
                    }
                    Some((status, fields)) if status == "stale" && fields.len() % 2 == 0 => {
                        let pairs = fields.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                        match codec::decode(&id, pairs) {
                            Ok(Some(now)) => {
                                self.seen.put(id.clone(), now);
                                self.retry(id, ops);
                            }
                            Ok(None) => fail_missing(ops),
                            Err(e) => fail(ops, &e),
                        }
                    }
                    _ => fail(
                        ops,
                        &StoreError::Unavailable(format!("session {id}: unexpected reply of the write script")),
                    ),
                },
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Redis restarted and forgot the script: load it, then the group again on
                    // the session read anew (this view is dropped).
                    reload = true;
                    self.batches.requeue(id, ops);
                }
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "the write script failed");
                    fail(ops, &StoreError::Unavailable(format!("Redis EVALSHA write: {e}")));
                }
            }
        }
        if reload {
            let load = self.scripts.write.load_async(&mut con);
            self.call("SCRIPT LOAD", load).await?;
        }
        Ok(())
    }

    /// Queues a group that met another master's write again, unless it has tried too often.
    fn retry(&self, id: SessionId, ops: Group) {
        tracing::debug!(session_id = %id, "session changed concurrently, applying again");
        let (mut again, mut over) = (Group::new(), Group::new());
        for mut op in ops {
            if op.retried() < MAX_ATTEMPTS { again.push(op) } else { over.push(op) }
        }
        if !over.is_empty() {
            tracing::warn!(session_id = %id, attempts = MAX_ATTEMPTS, "too many concurrent updates of one session");
            let e =
                StoreError::Unavailable(format!("session {id}: too many concurrent updates ({MAX_ATTEMPTS} attempts)"));
            fail(over, &e);
        }
        if !again.is_empty() {
            self.batches.requeue(id, again);
        }
    }
}
