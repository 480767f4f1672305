//! Group commit: the one task per store that writes the queued transitions of every session.
//!
//! Each round takes everything queued ([`Batches::take_all`]), applies each session's group in
//! queue order to the session as this master last saw it (sessions it has not seen are read
//! first, all in one pipeline), then sends one compare-and-set per session, all in **one
//! pipeline**: N concurrent calls cost one round trip to Redis instead of N, whatever sessions
//! they touch. A session another master changed meanwhile answers its current hash; its group
//! goes back to the front of the queue and is applied again to that hash in a later round
//! (bounded by [`MAX_ATTEMPTS`]). While rounds wait for Redis, new calls queue up for the next
//! one, so the busier the store, the bigger the groups.
//!
//! **Rounds overlap**: up to [`MAX_ROUNDS_IN_FLIGHT`] are sent before the oldest is answered, so
//! that the store applies and sends a round while Redis runs the one before. A round applies its
//! groups to each session as the rounds before it are to leave it, and its compare-and-set expects
//! exactly that version. Versions are told apart by the version counter *and* the writer tag, a
//! tag unique to the write that made the version (see `write.lua`): a write expecting a version
//! an earlier write of this store is to make passes only if that write passed, never on another
//! master's version of the same number. Redis runs one connection's commands in order, so the
//! earlier write runs first. When it does not pass (another master wrote first, or Redis failed),
//! the later writes of that session find a version they do not expect and are applied again like
//! any other stale write.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use ::redis::{ErrorKind, RedisResult, ServerErrorKind};
use openvidu_core::id::SessionId;

use super::batch::{Group, Touched, fail, fail_missing};
use super::codec;
use super::{Inner, MAX_ATTEMPTS};
use crate::store::StoreError;

/// Rounds sent to Redis and not yet answered, at most.
pub(super) const MAX_ROUNDS_IN_FLIGHT: usize = 2;

/// What Redis answers to a round's pipeline: one reply per write.
type Replies = Result<Vec<RedisResult<Vec<String>>>, StoreError>;

/// A session's group on its way to Redis.
struct Write {
    id: SessionId,
    ops: Group,
}

/// A round sent to Redis, waiting for its replies.
struct Sent {
    writes: Vec<Write>,
    replies: Pin<Box<dyn Future<Output = Replies> + Send>>,
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
    /// Commits rounds until nothing is queued or in flight.
    pub(super) async fn commit_queued(self: Arc<Self>) {
        let _running = Running(&self);
        let mut sent: VecDeque<Sent> = VecDeque::with_capacity(MAX_ROUNDS_IN_FLIGHT);
        loop {
            let room = sent.len() < MAX_ROUNDS_IN_FLIGHT;
            if room && let Some(round) = self.batches.take_all(sent.is_empty()) {
                match self.send_round(round).await {
                    Ok(Some(round)) => sent.push_back(round),
                    Ok(None) => {}
                    Err(e) => self.fail_queued(&e),
                }
                continue;
            }
            // Nothing queued and nothing in flight: `take_all` has ended this task.
            let Some(oldest) = sent.front_mut() else { return };
            let replies = if room {
                tokio::select! {
                    replies = &mut oldest.replies => replies,
                    () = self.batches.pushed() => continue,
                }
            } else {
                (&mut oldest.replies).await
            };
            let Some(Sent { writes, .. }) = sent.pop_front() else { return };
            if let Err(e) = self.finish_round(writes, replies).await {
                self.fail_queued(&e);
            }
        }
    }

    /// What was queued meanwhile waited behind a failing Redis: it fails now too, so that no
    /// caller waits much longer than one command timeout for a dead Redis.
    fn fail_queued(&self, e: &StoreError) {
        for ops in self.batches.drain() {
            fail(ops, e);
        }
    }

    /// Applies a round and sends its writes: `None` when it has nothing to write (every group is
    /// answered), `Err` when Redis failed reading the sessions it had to read first (every group
    /// of the round has been answered with that error).
    async fn send_round(self: &Arc<Self>, round: Vec<(SessionId, Group)>) -> Result<Option<Sent>, StoreError> {
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
                    // The session as this write is to leave it, for the next round to go on from.
                    self.seen.put(id.clone(), view);
                    writes.push(Write { id, ops });
                }
                Err(e) => fail(ops, &e),
            }
        }
        if writes.is_empty() {
            return Ok(None);
        }
        if writes.len() > 1 {
            tracing::trace!(sessions = writes.len(), "group commit");
        }
        let inner = Arc::clone(self);
        let mut con = self.conn.con();
        let mut replies: Pin<Box<dyn Future<Output = Replies> + Send>> =
            Box::pin(async move { inner.call("EVALSHA write (pipeline)", pipe.query_async(&mut con)).await });
        // Polled once now, which queues the pipeline on the connection before any later round's.
        if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(replies.as_mut().poll(cx))).await {
            replies = Box::pin(std::future::ready(done));
        }
        Ok(Some(Sent { writes, replies }))
    }

    /// Answers a round from its replies: each group answered, or queued again. `Err` when Redis
    /// itself failed (every group of the round has been answered with that error).
    async fn finish_round(&self, writes: Vec<Write>, replies: Replies) -> Result<(), StoreError> {
        let replies = match replies {
            Ok(replies) if replies.len() == writes.len() => replies,
            other => {
                let e = other.err().unwrap_or_else(|| {
                    StoreError::Unavailable(format!("Redis answered a pipeline of {} writes wrongly", writes.len()))
                });
                for w in writes {
                    // Whether the write was made is unknown: the session is read again on next use.
                    self.seen.forget(&w.id);
                    fail(w.ops, &e);
                }
                return Err(e);
            }
        };

        let mut reload = false;
        for (Write { id, ops }, reply) in writes.into_iter().zip(replies) {
            // Whether `seen` still holds the session as Redis has it; else it is read again on
            // next use.
            let current = match reply {
                Ok(reply) => match reply.split_first() {
                    Some((status, [])) if status == "ok" => {
                        for op in ops {
                            op.finish(None);
                        }
                        true
                    }
                    Some((status, fields)) if status == "stale" && fields.len() % 2 == 0 => {
                        let pairs = fields.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                        match codec::decode(&id, pairs) {
                            Ok(Some(now)) => {
                                self.seen.put(id.clone(), now);
                                self.retry(id.clone(), ops);
                                true
                            }
                            Ok(None) => {
                                fail_missing(ops);
                                false
                            }
                            Err(e) => {
                                fail(ops, &e);
                                false
                            }
                        }
                    }
                    _ => {
                        let e = StoreError::Unavailable(format!("session {id}: unexpected reply of the write script"));
                        fail(ops, &e);
                        false
                    }
                },
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Redis restarted and forgot the script: load it, then the group again on
                    // the session read anew.
                    reload = true;
                    self.batches.requeue(id.clone(), ops);
                    false
                }
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "the write script failed");
                    fail(ops, &StoreError::Unavailable(format!("Redis EVALSHA write: {e}")));
                    false
                }
            };
            if !current {
                self.seen.forget(&id);
            }
        }
        if reload {
            let mut con = self.conn.con();
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
