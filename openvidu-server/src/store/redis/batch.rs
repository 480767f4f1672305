//! The queue of transitions waiting to be committed: each caller's transition, its types erased
//! ([`Pending`]), queued per session ([`Batches`]) until the store's committing task takes
//! everything queued in one go (see [`super::commit`]).

use std::collections::HashMap;

use openvidu_core::id::{ConnectionId, SessionId};

use crate::store::StoreError;
use crate::store::transitions::SessionDoc;

/// The parts of a session a transition changed, to be written back.
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// The session itself (not its connections).
    pub session: bool,
    /// Connections created, changed or removed, in the order they were touched.
    pub connections: Vec<ConnectionId>,
}

impl Touched {
    /// The session itself.
    pub fn session() -> Self {
        Self { session: true, connections: Vec::new() }
    }

    /// One connection.
    pub fn connection(id: &ConnectionId) -> Self {
        Self { session: false, connections: vec![id.clone()] }
    }

    /// Nothing.
    pub fn is_empty(&self) -> bool {
        !self.session && self.connections.is_empty()
    }

    /// Adds `other`'s parts (in order, each connection once).
    pub fn merge(&mut self, other: Touched) {
        self.session |= other.session;
        for c in other.connections {
            if !self.connections.contains(&c) {
                self.connections.push(c);
            }
        }
    }
}

/// One queued transition of a session, its types erased so that a group can hold different ones.
pub(super) trait Pending: Send {
    /// Applies the transition to `doc` and keeps its result; on success, the parts it touched. A
    /// refusal leaves `doc` unchanged (the contract of [`crate::store::transitions`]).
    fn apply(&mut self, doc: &mut SessionDoc) -> Result<Touched, StoreError>;
    /// The caller's error when the session does not exist.
    fn missing(&self) -> StoreError;
    /// Counts one more attempt after a conflict with another master; returns the attempts so far.
    fn retried(&mut self) -> u32;
    /// Answers the caller: the result of the last `apply` once it is committed, or `err`.
    fn finish(self: Box<Self>, err: Option<StoreError>);
}

/// A [`Pending`] transition `f` with its own result type `R`, answered through `reply`.
pub(super) struct Queued<R, F, T, M> {
    f: F,
    touched: T,
    missing: M,
    attempts: u32,
    result: Option<Result<R, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F, T, M> Queued<R, F, T, M> {
    /// `f` changes the session, `touched` names what it changed from its result, `missing` is the
    /// error when the session does not exist.
    pub fn new(f: F, touched: T, missing: M, reply: tokio::sync::oneshot::Sender<Result<R, StoreError>>) -> Self {
        Self { f, touched, missing, attempts: 0, result: None, reply }
    }
}

impl<R, F, T, M> Pending for Queued<R, F, T, M>
where
    R: Send,
    F: FnMut(&mut SessionDoc) -> Result<R, StoreError> + Send,
    T: Fn(&R) -> Touched + Send,
    M: Fn() -> StoreError + Send,
{
    fn apply(&mut self, doc: &mut SessionDoc) -> Result<Touched, StoreError> {
        let result = (self.f)(doc);
        let touched = match &result {
            Ok(r) => Ok((self.touched)(r)),
            Err(e) => Err(e.clone()),
        };
        self.result = Some(result);
        touched
    }

    fn missing(&self) -> StoreError {
        (self.missing)()
    }

    fn retried(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    fn finish(self: Box<Self>, err: Option<StoreError>) {
        let out = match (err, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Unavailable("a transition was committed without being applied".into())),
        };
        // The caller may have gone (a cancelled request): nobody to tell.
        let _ = self.reply.send(out);
    }
}

/// Transitions of one session, in the order they are to be applied.
pub(super) type Group = Vec<Box<dyn Pending>>;

/// Answers every transition of `ops` with `err`.
pub(super) fn fail(ops: Group, err: &StoreError) {
    for op in ops {
        op.finish(Some(err.clone()));
    }
}

/// Answers every transition of `ops` with its own "no such session" error.
pub(super) fn fail_missing(ops: Group) {
    for op in ops {
        let e = op.missing();
        op.finish(Some(e));
    }
}

/// The transitions waiting per session, and whether the committing task runs.
#[derive(Default)]
pub(super) struct Batches {
    queue: std::sync::Mutex<Queue>,
    /// Told of every push while the committing task runs (it may wait for one with rounds in
    /// flight; a push it did not wait for leaves a permit, so none is missed).
    pushed: tokio::sync::Notify,
}

#[derive(Default)]
struct Queue {
    groups: HashMap<SessionId, Group>,
    running: bool,
}

impl Queue {
    fn drain(&mut self) -> Vec<Group> {
        self.groups.drain().map(|(_, ops)| ops).collect()
    }
}

impl Batches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Plain pushes and takes: a panic elsewhere leaves the queue consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `op`; true when no committing task runs (the caller must start one).
    pub fn push(&self, id: &SessionId, op: Box<dyn Pending>) -> bool {
        let mut q = self.lock();
        q.groups.entry(id.clone()).or_default().push(op);
        let start = !std::mem::replace(&mut q.running, true);
        drop(q);
        if !start {
            self.pushed.notify_one();
        }
        start
    }

    /// Resolves at the next push, or at once if one came since the last call resolved.
    pub async fn pushed(&self) {
        self.pushed.notified().await;
    }

    /// Queues transitions to be tried again, before what was queued since for their session.
    pub fn requeue(&self, id: SessionId, mut ops: Group) {
        let mut q = self.lock();
        let later = q.groups.entry(id).or_default();
        ops.append(later);
        *later = ops;
    }

    /// Everything queued, by session; `None` when nothing is, and then, if `or_end`, the
    /// committing task ends (the next [`push`](Self::push) starts another).
    pub fn take_all(&self, or_end: bool) -> Option<Vec<(SessionId, Group)>> {
        let mut q = self.lock();
        if q.groups.is_empty() {
            if or_end {
                q.running = false;
            }
            return None;
        }
        Some(q.groups.drain().collect())
    }

    /// Everything queued, the committing task going on.
    pub fn drain(&self) -> Vec<Group> {
        self.lock().drain()
    }

    /// The committing task is gone (it unwound): the next push starts another. Returns what was
    /// queued, for the caller to drop (each of those callers then gets `Unavailable`) rather than
    /// leave it waiting for a push that may never come.
    pub fn stopped(&self) -> Vec<Group> {
        let mut q = self.lock();
        q.running = false;
        q.drain()
    }
}
