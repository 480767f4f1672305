//! The recording lifecycle of spec §3: start and stop through REST, `recordingMode: ALWAYS`,
//! the autostop countdown of §3.5, notifications, webhooks and the entity files, over the
//! session's media node (which writes the media files).
//!
//! One recording per session at a time: the store's `recording` flag is the claim (atomic),
//! and this master keeps the recording's entity and its countdown in [`RecordingState`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use openvidu_core::RequestError;
use openvidu_core::id::{ConnectionId, RecordingId, SessionId, StreamId};
use openvidu_core::model::{
    Connection, EndReason, OpenViduRole, OutputMode, Publisher, Recording, RecordingLayout, RecordingMode,
    RecordingProperties, RecordingStatus,
};
use openvidu_core::rules;
use openvidu_core::wire::rest::RecordingPropertiesJson;
use openvidu_core::wire::rpc::Notification;
use openvidu_core::wire::webhook::WebhookEvent;
use openvidu_media::{RecordedStream, RecordingKind, RecordingSpec};
use tokio::task::AbortHandle;

use super::{OpenViduService, ServiceError, now_ms};
use crate::config::RecordingNotification;
use crate::recordings::RecordingFolder;
use crate::store::SessionSnapshot;

/// The recordings this master runs, by session.
#[derive(Default)]
pub(crate) struct RecordingState {
    active: Mutex<HashMap<SessionId, ActiveRecording>>,
    /// Sessions whose recording was stopped through REST: `ALWAYS` does not restart them.
    stopped_by_user: Mutex<HashSet<SessionId>>,
}

struct ActiveRecording {
    recording: Recording,
    autostop: Option<AbortHandle>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RecordingState {
    fn recording_of(&self, session: &SessionId) -> Option<Recording> {
        lock(&self.active).get(session).map(|a| a.recording.clone())
    }

    fn find(&self, id: &RecordingId) -> Option<Recording> {
        lock(&self.active).values().find(|a| &a.recording.id == id).map(|a| a.recording.clone())
    }

    fn take(&self, session: &SessionId) -> Option<Recording> {
        let active = lock(&self.active).remove(session)?;
        if let Some(t) = active.autostop {
            t.abort();
        }
        Some(active.recording)
    }

    fn cancel_countdown(&self, session: &SessionId) {
        if let Some(t) = lock(&self.active).get_mut(session).and_then(|a| a.autostop.take()) {
            tracing::info!(session_id = %session, "recording autostop countdown cancelled");
            t.abort();
        }
    }
}

/// Spec §3.5: the reasons a recording reports for a session's last participant going.
fn recording_reason(reason: EndReason) -> EndReason {
    match reason {
        EndReason::Disconnect
        | EndReason::ForceDisconnectByUser
        | EndReason::ForceDisconnectByServer
        | EndReason::NetworkDisconnect => EndReason::LastParticipantLeft,
        other => other,
    }
}

/// `WxH` → (W, H), even numbers for the encoder (validated before: 100–1999 each).
fn parse_resolution(resolution: &str) -> Option<(u32, u32)> {
    let (w, h) = resolution.split_once('x')?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    Some((w & !1, h & !1))
}

/// The streams a recording with `props` takes from `snapshot`: every published stream for
/// COMPOSED, those of connections with `record=true` for INDIVIDUAL.
fn recorded_streams(snapshot: &SessionSnapshot, props: &RecordingProperties) -> Vec<RecordedStream> {
    snapshot
        .active_connections()
        .filter(|c| !props.output_mode.eq(&OutputMode::Individual) || c.properties.record)
        .flat_map(|c| c.publishers.iter().map(move |p| recorded_stream(c, p)))
        .collect()
}

fn recorded_stream(c: &Connection, p: &Publisher) -> RecordedStream {
    let mut s = RecordedStream::new(p.stream_id.clone(), c.id.clone());
    s.client_data = c.active.as_ref().map(|a| a.client_data.clone()).unwrap_or_default();
    s.server_data = c.properties.data.clone();
    s.has_audio = p.media_options.has_audio;
    s.has_video = p.media_options.has_video;
    s.type_of_video = if p.media_options.has_video { p.media_options.type_of_video } else { None };
    s.video_dimensions = p.media_options.video_dimensions.as_deref().and_then(parse_dimensions);
    s
}

/// `{"width":640,"height":480}` (openvidu-browser's `videoDimensions`) → (640, 480).
fn parse_dimensions(json: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u16::try_from(n).ok());
    Some((dim("width")?, dim("height")?))
}

impl OpenViduService {
    fn require_recording(&self) -> Result<&RecordingFolder, ServiceError> {
        if self.config().recording { Ok(&self.inner.recordings) } else { Err(ServiceError::RecordingDisabled) }
    }

    /// Starts a recording (POST /recordings/start), checking in OpenVidu's order.
    pub async fn start_recording(
        &self,
        session: &SessionId,
        properties: &RecordingPropertiesJson,
    ) -> Result<Recording, ServiceError> {
        self.require_recording()?;
        let snapshot = self.session(session).await?;
        rules::check_recording_start(&snapshot.session, snapshot.active_connections().count())
            .map_err(|r| ServiceError::RecordingRefused { session: session.clone(), status: r.status() })?;
        let props = properties.over(&snapshot.session.properties.default_recording_properties);
        rules::validate_recording_properties(&props)?;
        self.start_recording_with(snapshot, props).await
    }

    async fn start_recording_with(
        &self,
        snapshot: SessionSnapshot,
        props: RecordingProperties,
    ) -> Result<Recording, ServiceError> {
        let folder = self.require_recording()?.clone();
        let session = snapshot.session.id.clone();
        let kind = if props.output_mode == OutputMode::Individual {
            RecordingKind::Individual
        } else {
            if props.has_video && props.recording_layout == RecordingLayout::Custom {
                return Err(RequestError::Unprocessable(
                    "recordingLayout CUSTOM is not supported by this server: use BEST_FIT, PICTURE_IN_PICTURE, \
                     VERTICAL_PRESENTATION or HORIZONTAL_PRESENTATION"
                        .into(),
                )
                .into());
            }
            let (width, height) = parse_resolution(&props.resolution).ok_or_else(|| {
                RequestError::Unprocessable(format!("Wrong \"resolution\" parameter: {}", props.resolution))
            })?;
            RecordingKind::Composed { layout: props.recording_layout, width, height, frame_rate: props.frame_rate }
        };
        if self.inner.store.set_recording(&session, true).await? {
            return Err(ServiceError::RecordingRefused { session, status: 409 });
        }
        let id = match folder.allocate(&session).await {
            Ok(id) => id,
            Err(e) => {
                let _ = self.inner.store.set_recording(&session, false).await;
                return Err(ServiceError::MediaUnavailable(format!("Error starting recording: {e}")));
            }
        };
        let mut recording = Recording::starting(id.clone(), &snapshot.session, now_ms(), props);
        lock(&self.inner.recording.active)
            .insert(session.clone(), ActiveRecording { recording: recording.clone(), autostop: None });
        let started = async {
            folder.save(&recording).await?;
            let mut spec = RecordingSpec::new(
                session.clone(),
                id.clone(),
                recording.properties.name.clone(),
                folder.folder_of(&id),
                recording.created_at,
                kind,
            );
            spec.has_audio = recording.properties.has_audio;
            spec.has_video = recording.properties.has_video;
            self.inner.media.create_router(&session).await?;
            let streams = recorded_streams(&snapshot, &recording.properties);
            self.inner.media.start_recording(spec, streams).await?;
            Ok::<_, ServiceError>(())
        };
        if let Err(e) = started.await {
            tracing::warn!(session_id = %session, recording_id = %id, error = %e, "recording failed to start");
            lock(&self.inner.recording.active).remove(&session);
            recording.status = RecordingStatus::Failed;
            if let Err(e) = folder.save(&recording).await {
                tracing::warn!(recording_id = %id, error = %e, "writing the failed entity file");
            }
            let _ = self.inner.store.set_recording(&session, false).await;
            return Err(ServiceError::MediaUnavailable(format!("Error starting recording: {e}")));
        }
        recording.status = RecordingStatus::Started;
        if let Err(e) = folder.save(&recording).await {
            tracing::warn!(recording_id = %id, error = %e, "writing the entity file");
        }
        let still_ours = match lock(&self.inner.recording.active).get_mut(&session) {
            Some(a) if a.recording.id == id => {
                a.recording = recording.clone();
                true
            }
            _ => false,
        };
        if !still_ours {
            // The session closed while the recording started: end it now.
            let _ = self.inner.media.stop_recording(&session, &id).await;
            return Err(ServiceError::SessionNotFound(session));
        }
        tracing::info!(session_id = %session, recording_id = %id, mode = ?recording.properties.output_mode,
            "recording started");
        self.inner.events.emit(WebhookEvent::RecordingStatusChanged {
            timestamp: now_ms(),
            reason: None,
            recording: Box::new(self.inner.recordings.with_url(recording.clone())),
        });
        self.notify_recording(
            &snapshot.connections,
            &Notification::RecordingStarted { id: id.to_string(), name: recording.properties.name.clone() },
        );
        if !snapshot.connections.iter().any(|c| !c.publishers.is_empty()) {
            self.start_countdown(&session);
        }
        Ok(recording)
    }

    /// Stops a recording (POST /recordings/stop/{id}): 404 unknown, 406 still starting, 409
    /// not in progress. Returns it `ready` (or `failed`) once its files are done, as CE does.
    pub async fn stop_recording(&self, id: &RecordingId) -> Result<Recording, ServiceError> {
        let folder = self.require_recording()?;
        let (active, held_here) = match self.inner.recording.find(id) {
            Some(r) => (r, true),
            None => {
                let r = folder.get(id).await?;
                // In a cluster another master may run it: its entity file says so, and the
                // media node (shared) holds the recorder, so any master can stop it.
                match r.status {
                    RecordingStatus::Started if self.cluster().is_some() => (r, false),
                    RecordingStatus::Starting => return Err(ServiceError::RecordingStarting(id.clone())),
                    _ => return Err(ServiceError::RecordingNotInProgress(id.clone())),
                }
            }
        };
        if active.status == RecordingStatus::Starting {
            return Err(ServiceError::RecordingStarting(id.clone()));
        }
        let session = active.session_id.clone();
        lock(&self.inner.recording.stopped_by_user).insert(session.clone());
        let recipients = match self.inner.store.session(&session).await {
            Ok(Some(s)) => s.connections,
            _ => Default::default(),
        };
        let reason = EndReason::RecordingStoppedByServer;
        let recording = if held_here {
            self.end_recording(&session, reason, &recipients).await
        } else {
            self.finish_recording(active, reason, &recipients).await
        }
        .ok_or_else(|| ServiceError::RecordingNotInProgress(id.clone()))?;
        // Stopping during the countdown of an empty session closes it (spec §3.5).
        if !recipients.iter().any(|c| c.active.is_some()) {
            match self.close_session(&session, EndReason::LastParticipantLeft).await {
                Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
                Err(e) => tracing::warn!(session_id = %session, error = %e, "closing the empty session"),
            }
        }
        Ok(recording)
    }

    /// Ends the session's recording for `reason`: `stopped` then `ready`/`failed`, with the
    /// webhooks and the notification to `recipients` (the session's connections). Returns the
    /// final recording, or `None` when the session was not being recorded by this master.
    pub(super) async fn end_recording(
        &self,
        session: &SessionId,
        reason: EndReason,
        recipients: &[Connection],
    ) -> Option<Recording> {
        let recording = self.inner.recording.take(session)?;
        self.finish_recording(recording, reason, recipients).await
    }

    /// Ends `recording` (see [`end_recording`](Self::end_recording)), unless its entity file
    /// says another master ended it already.
    async fn finish_recording(
        &self,
        mut recording: Recording,
        reason: EndReason,
        recipients: &[Connection],
    ) -> Option<Recording> {
        let session = &recording.session_id.clone();
        let reason = recording_reason(reason);
        let folder = &self.inner.recordings;
        if let Ok(on_disk) = folder.get(&recording.id).await
            && !matches!(on_disk.status, RecordingStatus::Starting | RecordingStatus::Started)
        {
            tracing::info!(recording_id = %recording.id, status = ?on_disk.status, "recording already ended elsewhere");
            return None;
        }
        let id = recording.id.clone();
        recording.status = RecordingStatus::Stopped;
        if let Err(e) = folder.save(&recording).await {
            tracing::warn!(recording_id = %id, error = %e, "writing the entity file");
        }
        self.inner.events.emit(WebhookEvent::RecordingStatusChanged {
            timestamp: now_ms(),
            reason: Some(reason),
            recording: Box::new(recording.clone()),
        });
        self.notify_recording(
            recipients,
            &Notification::RecordingStopped { id: id.to_string(), name: recording.properties.name.clone(), reason },
        );
        match self.inner.media.stop_recording(session, &id).await {
            Ok(report) => {
                recording.size = report.size;
                recording.duration = report.duration;
                recording.properties.has_audio = report.has_audio;
                recording.properties.has_video = report.has_video;
                recording.status =
                    if report.has_audio || report.has_video { RecordingStatus::Ready } else { RecordingStatus::Failed };
            }
            Err(e) => {
                tracing::warn!(session_id = %session, recording_id = %id, error = %e, "recording failed");
                recording.status = RecordingStatus::Failed;
            }
        }
        let recording = self.inner.recordings.with_url(recording);
        if let Err(e) = folder.save(&recording).await {
            tracing::warn!(recording_id = %id, error = %e, "writing the entity file");
        }
        if let Err(e) = self.inner.store.set_recording(session, false).await {
            tracing::debug!(session_id = %session, error = %e, "clearing the recording flag");
        }
        tracing::info!(session_id = %session, recording_id = %id, status = ?recording.status, size = recording.size,
            duration = recording.duration, ?reason, "recording stopped");
        self.inner.events.emit(WebhookEvent::RecordingStatusChanged {
            timestamp: now_ms(),
            reason: Some(reason),
            recording: Box::new(recording.clone()),
        });
        Some(recording)
    }

    /// Sends a recording notification to those `OPENVIDU_RECORDING_NOTIFICATION` names.
    fn notify_recording(&self, connections: &[Connection], notification: &Notification) {
        let who = self.config().recording_notification;
        let recipients: Vec<&ConnectionId> = connections
            .iter()
            .filter(|c| c.active.is_some())
            .filter(|c| match who {
                RecordingNotification::None => false,
                RecordingNotification::Moderator => c.properties.role == OpenViduRole::Moderator,
                RecordingNotification::PublisherModerator => c.properties.role != OpenViduRole::Subscriber,
                RecordingNotification::All => true,
            })
            .map(|c| &c.id)
            .collect();
        self.inner.participants.notify_all(recipients, notification);
    }

    /// Starts the autostop countdown of the session's recording (spec §3.5), unless one runs.
    pub(super) fn start_countdown(&self, session: &SessionId) {
        let timeout = self.config().recording_autostop_timeout;
        let mut active = lock(&self.inner.recording.active);
        let Some(a) = active.get_mut(session) else { return };
        if a.autostop.is_some() {
            return;
        }
        tracing::info!(session_id = %session, recording_id = %a.recording.id, timeout_s = timeout.as_secs(),
            "recording autostop countdown started");
        let service = self.clone();
        let id = session.clone();
        a.autostop = Some(
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                service.countdown_expired(&id).await;
            })
            .abort_handle(),
        );
    }

    async fn countdown_expired(&self, session: &SessionId) {
        if let Some(a) = lock(&self.inner.recording.active).get_mut(session) {
            // This task is the countdown: it must not abort itself when the recording ends.
            a.autostop = None;
        }
        let snapshot = match self.inner.store.session(session).await {
            Ok(Some(s)) => s,
            _ => return,
        };
        tracing::info!(session_id = %session, "recording autostop countdown expired");
        if snapshot.active_connections().next().is_none() {
            match self.close_session(session, EndReason::AutomaticStop).await {
                Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
                Err(e) => tracing::warn!(session_id = %session, error = %e, "automatic stop"),
            }
        } else {
            self.end_recording(session, EndReason::AutomaticStop, &snapshot.connections).await;
        }
    }

    /// Whether this master records the session now.
    pub(super) fn is_recording(&self, session: &SessionId) -> bool {
        lock(&self.inner.recording.active).contains_key(session)
    }

    /// A stream was published (`snapshot`: the session with it stored): it joins the running
    /// recording (cancelling a countdown), or starts one when the session records `ALWAYS`.
    pub(super) async fn stream_published(
        &self,
        snapshot: SessionSnapshot,
        connection: &ConnectionId,
        publisher: &Publisher,
    ) {
        if !self.config().recording {
            return;
        }
        let session = &snapshot.session.id;
        let Some(c) = snapshot.connection(connection) else { return };
        match self.inner.recording.recording_of(session) {
            Some(r) => {
                self.inner.recording.cancel_countdown(session);
                let individual = r.properties.output_mode == OutputMode::Individual;
                if r.status == RecordingStatus::Started && (!individual || c.properties.record) {
                    let stream = recorded_stream(c, publisher);
                    if let Err(e) = self.inner.media.record_stream(session, &r.id, stream).await {
                        tracing::warn!(session_id = %session, recording_id = %r.id, stream_id = %publisher.stream_id,
                            error = %e, "stream not recorded");
                    }
                }
            }
            None => {
                let props = &snapshot.session.properties;
                if props.recording_mode == RecordingMode::Always
                    && !snapshot.session.recording
                    && !lock(&self.inner.recording.stopped_by_user).contains(session)
                {
                    let service = self.clone();
                    let defaults = props.default_recording_properties.clone();
                    tokio::spawn(async move {
                        let session = snapshot.session.id.clone();
                        if let Err(e) = service.start_recording_with(snapshot, defaults).await {
                            tracing::warn!(session_id = %session, error = %e, "ALWAYS recording did not start");
                        }
                    });
                }
            }
        }
    }

    /// A stream stopped publishing: its part of the recording ends; with no publisher left the
    /// countdown starts.
    pub(super) async fn stream_unpublished(&self, session: &SessionId, stream: &StreamId) {
        let Some(r) = self.inner.recording.recording_of(session) else { return };
        if let Err(e) = self.inner.media.stop_recording_stream(session, &r.id, stream).await {
            tracing::debug!(session_id = %session, recording_id = %r.id, stream_id = %stream, error = %e,
                "stream was not being recorded");
        }
        if let Ok(Some(snapshot)) = self.inner.store.session(session).await
            && !snapshot.connections.iter().any(|c| !c.publishers.is_empty())
        {
            self.start_countdown(session);
        }
    }

    /// The media node gave up on a recording (disk full, composer died): it ends `failed`.
    pub(super) async fn recording_failed(&self, session: &SessionId, id: &RecordingId, reason: &str) {
        if self.inner.recording.recording_of(session).is_none_or(|r| &r.id != id) {
            return;
        }
        tracing::warn!(session_id = %session, recording_id = %id, %reason, "recording failed on the media node");
        let recipients = match self.inner.store.session(session).await {
            Ok(Some(s)) => s.connections,
            _ => Default::default(),
        };
        self.end_recording(session, EndReason::MediaServerDisconnect, &recipients).await;
    }

    /// Forgets the session's recording bookkeeping once it is closed.
    pub(super) fn session_closed(&self, session: &SessionId) {
        lock(&self.inner.recording.stopped_by_user).remove(session);
    }

    /// One recording.
    pub async fn recording(&self, id: &RecordingId) -> Result<Recording, ServiceError> {
        Ok(self.require_recording()?.get(id).await?)
    }

    /// Every recording.
    pub async fn recordings(&self) -> Result<Vec<Recording>, ServiceError> {
        Ok(self.require_recording()?.list().await?)
    }

    /// Deletes a recording.
    pub async fn delete_recording(&self, id: &RecordingId) -> Result<(), ServiceError> {
        Ok(self.require_recording()?.delete(id).await?)
    }
}
