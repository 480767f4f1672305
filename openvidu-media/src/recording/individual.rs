//! INDIVIDUAL recording: one WebM per recorded stream, zipped with the sync file at stop.
//!
//! Every recorded stream gets an async task that reads its taps, rebuilds frames
//! ([`FrameAssembler`]), asks for keyframes, interleaves audio and video by time and hands the
//! frames to a blocking writer thread that owns the file ([`WebmWriter`]), so file I/O never
//! runs on the tokio runtime. The file is opened at the first video keyframe (it needs the
//! video's dimensions) and starts with the audio received up to [`AUDIO_PREROLL`] before it,
//! so no sound is lost while the publisher answers the keyframe request (audio-only: at the
//! first audio packet); each track is anchored on the wall clock of its first frame and then
//! follows its RTP timestamps, so pauses keep their length and audio and video stay in sync.
//!
//! Files are `<streamId>.webm`, or `<streamId>-1.webm`, `-2`… when the stream was already
//! recorded earlier in the same recording; H264 video goes into Matroska (`.mkv`), which
//! WebM does not allow. At stop, `<name>.json` (spec §3.4) and every file are zipped into
//! `<name>.zip` and the loose files are deleted (spec §3.3).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openvidu_core::id::StreamId;
use openvidu_core::wire::recording::{IndividualSyncJson, SyncFileJson};
use rtc::rtp;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};

use super::depacketize::{Frame, FrameAssembler, video_dimensions};
use super::tap::{RecordedCodec, StreamTap, TrackTap};
use super::webm::{TrackSpec, WebmWriter, file_extension};
use super::{RecordedStream, RecordingReport, RecordingSpec};
use crate::keyframe::KeyframeNeed;
use crate::node::{MediaError, MediaEvent};

/// How often a stream without a keyframe asks for one.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Audio kept while waiting for the first video keyframe.
const AUDIO_PREROLL: Duration = Duration::from_secs(2);
/// How long a frame waits for the other track before it is written anyway.
const INTERLEAVE_WAIT: Duration = Duration::from_millis(300);
/// Frames queued to a writer thread before frames are dropped.
const WRITER_QUEUE: usize = 1024;
/// How long finishing one file may take.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long zipping may take.
const ZIP_TIMEOUT: Duration = Duration::from_secs(120);

/// What every stream task shares with the recorder.
struct Shared {
    spec: RecordingSpec,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// `RecordingFailed` was sent.
    failed: AtomicBool,
}

impl Shared {
    /// Reports the recording as failed (once).
    fn fail(&self, reason: String) {
        if !self.failed.swap(true, Ordering::SeqCst) {
            tracing::error!(session = %self.spec.session, recording_id = %self.spec.id, %reason, "recording failed");
            let _ = self.events.send(MediaEvent::RecordingFailed {
                session: self.spec.session.clone(),
                recording: self.spec.id.clone(),
                reason,
            });
        }
    }
}

/// How a stream's file ended.
#[derive(Clone, Debug, Default)]
struct FileOutcome {
    /// Wall time of the first written frame (`None`: nothing was written, no file).
    first: Option<SystemTime>,
    /// Wall time of the last written frame.
    last: Option<SystemTime>,
    /// File size in bytes.
    size: u64,
    /// Why writing failed, if it did.
    error: Option<String>,
}

/// One recorded stream file.
struct FileEntry {
    info: RecordedStream,
    /// File name in the folder, e.g. `str_CAM_X_con_Y-1.webm`.
    name: String,
    has_audio: bool,
    has_video: bool,
    /// Ends the stream task.
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<FileOutcome>>,
    outcome: Option<FileOutcome>,
}

#[derive(Default)]
struct State {
    stopped: bool,
    files: Vec<FileEntry>,
    /// Files started per stream, for the `-n` suffix.
    counts: HashMap<StreamId, u32>,
}

/// A running INDIVIDUAL recording.
pub(crate) struct IndividualRecorder {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Serialises stop calls and keeps the first one's result.
    stopped: tokio::sync::Mutex<Option<Result<RecordingReport, String>>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl IndividualRecorder {
    /// Starts recording into `spec.folder`; failures later on are reported on `events` as
    /// [`MediaEvent::RecordingFailed`].
    pub(crate) fn start(spec: RecordingSpec, events: mpsc::UnboundedSender<MediaEvent>) -> Result<Self, MediaError> {
        check_writable(&spec.folder)
            .map_err(|e| MediaError::Recording(format!("folder {} is not writable: {e}", spec.folder.display())))?;
        tracing::info!(session = %spec.session, recording_id = %spec.id, folder = %spec.folder.display(),
            "INDIVIDUAL recording started");
        Ok(Self {
            shared: Arc::new(Shared { spec, events, failed: AtomicBool::new(false) }),
            state: Mutex::new(State::default()),
            stopped: tokio::sync::Mutex::new(None),
        })
    }

    /// Adds a stream (at start, or when it publishes during the recording).
    pub(crate) fn add_stream(&self, tap: StreamTap) -> Result<(), MediaError> {
        let spec = &self.shared.spec;
        let StreamTap { info, audio, video } = tap;
        let audio = audio.filter(|_| spec.has_audio && info.has_audio);
        let video = video.filter(|_| spec.has_video && info.has_video);
        if audio.is_none() && video.is_none() {
            tracing::info!(session = %spec.session, recording_id = %spec.id, stream = %info.stream,
                "stream has nothing to record");
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| MediaError::Internal("INDIVIDUAL recording needs a tokio runtime".into()))?;
        let mut state = lock(&self.state);
        if state.stopped {
            return Err(MediaError::Recording(format!("recording {} is stopping", spec.id)));
        }
        if state.files.iter().any(|f| f.info.stream == info.stream && f.task.is_some()) {
            return Err(MediaError::Recording(format!("stream {} is already being recorded", info.stream)));
        }
        let codecs: Vec<RecordedCodec> = audio.iter().chain(video.iter()).map(|t| t.codec).collect();
        let count = state.counts.entry(info.stream.clone()).or_insert(0);
        let name = match *count {
            0 => format!("{}.{}", info.stream, file_extension(&codecs)),
            n => format!("{}-{n}.{}", info.stream, file_extension(&codecs)),
        };
        *count += 1;
        let (stop_tx, stop_rx) = oneshot::channel();
        tracing::info!(session = %spec.session, recording_id = %spec.id, stream = %info.stream, file = %name,
            audio = audio.is_some(), video = video.is_some(), "recording stream");
        let (has_audio, has_video) = (audio.is_some(), video.is_some());
        let ctx = StreamCtx {
            shared: self.shared.clone(),
            stream: info.stream.clone(),
            path: spec.folder.join(&name),
            metadata: Metadata { info: info.clone(), file: name.clone(), has_audio, has_video },
        };
        let task = runtime.spawn(record_stream(ctx, audio, video, stop_rx));
        state.files.push(FileEntry {
            info,
            name,
            has_audio,
            has_video,
            stop: Some(stop_tx),
            task: Some(task),
            outcome: None,
        });
        Ok(())
    }

    /// Ends the file of a stream that stopped publishing.
    pub(crate) async fn remove_stream(&self, stream: &StreamId) {
        let running = {
            let mut state = lock(&self.state);
            state
                .files
                .iter_mut()
                .enumerate()
                .find(|(_, f)| &f.info.stream == stream && f.task.is_some())
                .map(|(i, f)| (i, f.stop.take(), f.task.take()))
        };
        let Some((index, stop, Some(task))) = running else { return };
        let outcome = finish_task(&self.shared, stream, stop, task).await;
        if let Some(entry) = lock(&self.state).files.get_mut(index) {
            entry.outcome = Some(outcome);
        }
    }

    /// Ends every file, writes `<name>.json` and `<name>.zip`.
    pub(crate) async fn stop(&self) -> Result<RecordingReport, MediaError> {
        let mut done = self.stopped.lock().await;
        if let Some(result) = done.as_ref() {
            return result.clone().map_err(MediaError::Recording);
        }
        let running: Vec<_> = {
            let mut state = lock(&self.state);
            state.stopped = true;
            state
                .files
                .iter_mut()
                .enumerate()
                .filter_map(|(i, f)| Some((i, f.info.stream.clone(), f.stop.take(), f.task.take()?)))
                .collect()
        };
        let finished = futures_join(
            running
                .into_iter()
                .map(|(i, stream, stop, task)| {
                    let shared = self.shared.clone();
                    async move { (i, finish_task(&shared, &stream, stop, task).await) }
                })
                .collect(),
        )
        .await;
        let files: Vec<(String, SyncFileJson, FileOutcome)> = {
            let mut state = lock(&self.state);
            for (i, outcome) in finished {
                if let Some(entry) = state.files.get_mut(i) {
                    entry.outcome = Some(outcome);
                }
            }
            state
                .files
                .iter()
                .filter_map(|f| {
                    let outcome = f.outcome.clone()?;
                    if let Some(error) = &outcome.error {
                        tracing::warn!(session = %self.shared.spec.session, recording_id = %self.shared.spec.id,
                            stream = %f.info.stream, file = %f.name, %error, "file ended with an error");
                    }
                    outcome.first?;
                    Some((f.name.clone(), self.sync_entry(f, &outcome), outcome))
                })
                .collect()
        };
        let result = self.seal(files).await;
        *done = Some(result.clone());
        result.map_err(MediaError::Recording)
    }

    /// The sync file entry of a finished file.
    fn sync_entry(&self, f: &FileEntry, outcome: &FileOutcome) -> SyncFileJson {
        let created_at = self.shared.spec.created_at;
        let offset = |t: Option<SystemTime>| t.map_or(0, |t| epoch_ms(t) - created_at as i64);
        SyncFileJson {
            name: f.name.clone(),
            connection_id: f.info.connection.clone(),
            stream_id: f.info.stream.clone(),
            size: outcome.size,
            client_data: f.info.client_data.clone(),
            server_data: f.info.server_data.clone(),
            has_audio: f.has_audio,
            has_video: f.has_video,
            type_of_video: if f.has_video { f.info.type_of_video } else { None },
            start_time_offset: offset(outcome.first),
            end_time_offset: offset(outcome.last),
        }
    }

    /// Writes the sync file and the zip, deletes the loose files, builds the report.
    async fn seal(&self, mut files: Vec<(String, SyncFileJson, FileOutcome)>) -> Result<RecordingReport, String> {
        let spec = &self.shared.spec;
        files.sort_by_key(|(_, _, o)| o.first);
        let sync = IndividualSyncJson {
            created_at: spec.created_at,
            id: spec.id.clone(),
            name: spec.name.clone(),
            session_id: spec.session.clone(),
            files: files.iter().map(|(_, s, _)| s.clone()).collect(),
        };
        let json = serde_json::to_string_pretty(&sync).map_err(|e| format!("sync file: {e}"))?;
        let start = files.iter().filter_map(|(_, _, o)| o.first).min();
        let end = files.iter().filter_map(|(_, _, o)| o.last).max();
        let report = RecordingReport {
            size: files.iter().map(|(_, s, _)| s.size).sum(),
            duration: match (start, end) {
                (Some(s), Some(e)) => (epoch_ms(e) - epoch_ms(s)).max(0) as f64 / 1000.0,
                _ => 0.0,
            },
            has_audio: files.iter().any(|(_, s, _)| s.has_audio),
            has_video: files.iter().any(|(_, s, _)| s.has_video),
            files: vec![format!("{}.zip", spec.name)],
        };
        let folder = spec.folder.clone();
        let name = spec.name.clone();
        let names: Vec<String> = files.into_iter().map(|(n, _, _)| n).collect();
        let job = tokio::task::spawn_blocking(move || zip_recording(&folder, &name, &json, &names));
        let outcome = match tokio::time::timeout(ZIP_TIMEOUT, job).await {
            Ok(Ok(r)) => r.map_err(|e| format!("zipping failed: {e}")),
            Ok(Err(e)) => Err(format!("zipping failed: {e}")),
            Err(_) => Err("zipping timed out".to_string()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(session = %spec.session, recording_id = %spec.id, size = report.size,
                    duration = report.duration, "INDIVIDUAL recording sealed");
                Ok(report)
            }
            Err(reason) => {
                self.shared.fail(reason.clone());
                Err(reason)
            }
        }
    }
}

/// Awaits all `futures` (tasks run concurrently).
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Stops a stream task and waits (bounded) for its outcome.
async fn finish_task(
    shared: &Shared,
    stream: &StreamId,
    stop: Option<oneshot::Sender<()>>,
    mut task: tokio::task::JoinHandle<FileOutcome>,
) -> FileOutcome {
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    match tokio::time::timeout(FINISH_TIMEOUT + Duration::from_secs(2), &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::error!(session = %shared.spec.session, recording_id = %shared.spec.id, stream = %stream,
                error = %e, "stream recorder task failed");
            FileOutcome { error: Some(e.to_string()), ..Default::default() }
        }
        Err(_) => {
            task.abort();
            tracing::error!(session = %shared.spec.session, recording_id = %shared.spec.id, stream = %stream,
                "stream recorder did not finish in time");
            FileOutcome { error: Some("timed out".into()), ..Default::default() }
        }
    }
}

/// Creates and removes a probe file in `folder`.
fn check_writable(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(".openvidu-write-test-{:08x}", rand::random::<u32>()));
    let mut f = std::fs::File::create(&probe)?;
    let written = f.write_all(b"ok");
    drop(f);
    let removed = std::fs::remove_file(&probe);
    written.and(removed)
}

/// Writes `<name>.json`, zips it with `files` into `<name>.zip`, deletes the loose files.
fn zip_recording(folder: &Path, name: &str, json: &str, files: &[String]) -> std::io::Result<()> {
    use zip::write::SimpleFileOptions;
    let json_name = format!("{name}.json");
    let json_path = folder.join(&json_name);
    std::fs::write(&json_path, json)?;
    let zip_path = folder.join(format!("{name}.zip"));
    let zip_err = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(&zip_path)?));
    for file in files.iter().chain(std::iter::once(&json_name)) {
        let path = folder.join(file);
        let size = std::fs::metadata(&path)?.len();
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(size >= u64::from(u32::MAX));
        zip.start_file(file.as_str(), options).map_err(zip_err)?;
        std::io::copy(&mut std::fs::File::open(&path)?, &mut zip)?;
    }
    zip.finish().map_err(zip_err)?.flush()?;
    for file in files.iter().chain(std::iter::once(&json_name)) {
        std::fs::remove_file(folder.join(file))?;
        if file != &json_name {
            let _ = std::fs::remove_file(folder.join(metadata_name(file)));
        }
    }
    Ok(())
}

/// Milliseconds since the epoch.
fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// `a − b` in microseconds.
fn diff_us(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// What a stream task needs.
struct StreamCtx {
    shared: Arc<Shared>,
    stream: StreamId,
    path: PathBuf,
    metadata: Metadata,
}

/// What the `.stream.<file>` metadata file says besides times and size (spec §3.3).
#[derive(Clone)]
struct Metadata {
    info: RecordedStream,
    /// The media file name.
    file: String,
    has_audio: bool,
    has_video: bool,
}

impl Metadata {
    /// The metadata file's path next to the media file `path`: `.stream.<streamId>[-n]`.
    fn path(&self, path: &Path) -> PathBuf {
        path.with_file_name(metadata_name(&self.file))
    }

    /// Writes the metadata file (spec §3.3).
    fn write(&self, path: &Path, start: SystemTime, end: SystemTime, size: u64) -> std::io::Result<()> {
        let mut json = serde_json::json!({
            "name": self.file,
            "connectionId": self.info.connection,
            "streamId": self.info.stream,
            "clientData": self.info.client_data,
            "serverData": self.info.server_data,
            "startTime": epoch_ms(start),
            "endTime": epoch_ms(end),
            "duration": epoch_ms(end) - epoch_ms(start),
            "size": size,
            "hasAudio": self.has_audio,
            "hasVideo": self.has_video,
        });
        if self.has_video
            && let (Some(map), Some(kind)) = (json.as_object_mut(), self.info.type_of_video)
        {
            map.insert("typeOfVideo".into(), serde_json::json!(kind));
        }
        std::fs::write(self.path(path), json.to_string())
    }
}

/// `.stream.<file name without extension>`.
fn metadata_name(file: &str) -> String {
    let base = file.rsplit_once('.').map_or(file, |(base, _)| base);
    format!(".stream.{base}")
}

/// A command for a writer thread.
enum WriterCmd {
    /// Create the file with these tracks; its time 0 is wall time `start`.
    Open { tracks: Vec<TrackSpec>, start: SystemTime },
    /// The wall time of the last frame, sent before the channel closes.
    End(SystemTime),
    /// Write a frame.
    Frame { track: usize, time_ms: i64, keyframe: bool, data: Bytes },
}

/// The next packet of `tap`, or never when there is no tap.
async fn next_packet(tap: Option<&mut TrackTap>) -> Result<rtp::Packet, RecvError> {
    match tap {
        Some(tap) => tap.packets.recv().await,
        None => std::future::pending().await,
    }
}

/// Records one stream until `stop` fires or its tracks close.
async fn record_stream(
    ctx: StreamCtx,
    mut audio: Option<TrackTap>,
    mut video: Option<TrackTap>,
    mut stop: oneshot::Receiver<()>,
) -> FileOutcome {
    let (tx, rx) = std::sync::mpsc::sync_channel(WRITER_QUEUE);
    let (done_tx, done_rx) = oneshot::channel();
    let writer_shared = ctx.shared.clone();
    let path = ctx.path.clone();
    let stream = ctx.stream.clone();
    let metadata = ctx.metadata.clone();
    let spawned = std::thread::Builder::new().name("recording-writer".into()).spawn(move || {
        let _ = done_tx.send(writer_loop(&writer_shared, &stream, &path, &metadata, rx));
    });
    if let Err(e) = spawned {
        ctx.shared.fail(format!("cannot start a writer thread: {e}"));
        return FileOutcome { error: Some(e.to_string()), ..Default::default() };
    }
    let mut mux = Muxer::new(&ctx, audio.as_ref().map(|t| t.codec), video.as_ref().map(|t| t.codec), tx);
    let mut audio_asm = audio.as_ref().map(|t| FrameAssembler::new(t.codec, t.clock_rate));
    let mut video_asm = video.as_ref().map(|t| FrameAssembler::new(t.codec, t.clock_rate));
    let mut last_request: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if audio.is_none() && video.is_none() {
            tracing::debug!(stream = %ctx.stream, "stream tracks closed");
            break;
        }
        tokio::select! {
            _ = &mut stop => break,
            r = next_packet(audio.as_mut()) => match r {
                Ok(packet) => {
                    if let Some(asm) = &mut audio_asm {
                        for frame in asm.push(packet) {
                            mux.audio(frame);
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(recording_id = %ctx.shared.spec.id, stream = %ctx.stream, lost = n,
                        "audio recorder lagged");
                    if let Some(asm) = &mut audio_asm {
                        asm.reset();
                    }
                }
                Err(RecvError::Closed) => audio = None,
            },
            r = next_packet(video.as_mut()) => match r {
                Ok(packet) => {
                    if let Some(asm) = &mut video_asm {
                        for frame in asm.push(packet) {
                            mux.video(frame);
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(recording_id = %ctx.shared.spec.id, stream = %ctx.stream, lost = n,
                        "video recorder lagged");
                    if let Some(asm) = &mut video_asm {
                        asm.reset();
                    }
                    last_request = None;
                }
                Err(RecvError::Closed) => video = None,
            },
            _ = tick.tick() => {}
        }
        // Keyframe requests: at once, then every second until one arrives.
        if let (Some(tap), Some(asm)) = (&video, &video_asm) {
            if asm.needs_keyframe() || mux.video_resync {
                if last_request.is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY) {
                    tap.request_keyframe(if mux.video_anchor.is_none() {
                        KeyframeNeed::First
                    } else {
                        KeyframeNeed::Recovery
                    });
                    last_request = Some(Instant::now());
                }
            } else {
                last_request = None;
            }
        }
        mux.flush(false);
        if mux.writer_gone {
            break;
        }
    }
    mux.release_held_video();
    mux.flush(true);
    let Muxer { tx, start, last_ms, .. } = mux;
    let last = start.map(|s| s + Duration::from_millis(last_ms.max(0) as u64));
    if let Some(last) = last {
        let _ = tx.send(WriterCmd::End(last));
    }
    drop(tx); // ends the writer loop
    let (size, error) = match tokio::time::timeout(FINISH_TIMEOUT, done_rx).await {
        Ok(Ok(r)) => r,
        _ => {
            tracing::error!(recording_id = %ctx.shared.spec.id, stream = %ctx.stream, "file writer did not finish");
            (std::fs::metadata(&ctx.path).map(|m| m.len()).unwrap_or(0), Some("writer timed out".into()))
        }
    };
    FileOutcome { first: start, last, size, error }
}

/// A frame waiting to be interleaved.
struct Queued {
    time_ms: i64,
    keyframe: bool,
    data: Bytes,
    since: Instant,
}

/// Times, interleaves and forwards the frames of one stream.
struct Muxer<'a> {
    ctx: &'a StreamCtx,
    audio_codec: Option<RecordedCodec>,
    video_codec: Option<RecordedCodec>,
    tx: std::sync::mpsc::SyncSender<WriterCmd>,
    /// Wall time of file time 0.
    start: Option<SystemTime>,
    /// Per track: wall time and media time of its first frame.
    audio_anchor: Option<(SystemTime, i64)>,
    video_anchor: Option<(SystemTime, i64)>,
    /// Audio waiting for the first video keyframe.
    preroll: VecDeque<Frame>,
    /// In a file the audio opened: the video's first keyframe, held until the next video frame
    /// gives the frame period (see [`Muxer::anchor_video`]).
    first_video: Option<Frame>,
    /// Queues by file track index.
    queues: Vec<VecDeque<Queued>>,
    audio_track: Option<usize>,
    video_track: Option<usize>,
    /// Latest file time sent, over all tracks.
    last_ms: i64,
    /// Video frames are dropped until a keyframe (after the writer queue overflowed).
    video_resync: bool,
    /// The writer thread is gone (failed).
    writer_gone: bool,
}

impl<'a> Muxer<'a> {
    fn new(
        ctx: &'a StreamCtx,
        audio_codec: Option<RecordedCodec>,
        video_codec: Option<RecordedCodec>,
        tx: std::sync::mpsc::SyncSender<WriterCmd>,
    ) -> Self {
        let video_track = video_codec.map(|_| 0);
        let audio_track = audio_codec.map(|_| usize::from(video_codec.is_some()));
        Self {
            ctx,
            audio_codec,
            video_codec,
            tx,
            start: None,
            audio_anchor: None,
            video_anchor: None,
            preroll: VecDeque::new(),
            first_video: None,
            queues: (0..usize::from(audio_codec.is_some()) + usize::from(video_codec.is_some()))
                .map(|_| VecDeque::new())
                .collect(),
            audio_track,
            video_track,
            last_ms: 0,
            video_resync: false,
            writer_gone: false,
        }
    }

    /// File time of a frame of a track anchored at `anchor`.
    fn time_ms(&self, anchor: (SystemTime, i64), media_time_us: i64) -> Option<i64> {
        let start = self.start?;
        Some((diff_us(anchor.0, start) + media_time_us - anchor.1).div_euclid(1000))
    }

    fn audio(&mut self, frame: Frame) {
        let anchor = *self.audio_anchor.get_or_insert((frame.arrived, frame.media_time_us));
        if self.start.is_none() {
            // With the announced dimensions (VP8/VP9 need nothing else in the header) the file
            // starts with this first sound; the video track begins at its first keyframe.
            let announced = self.ctx.metadata.info.video_dimensions.filter(|(w, h)| *w > 0 && *h > 0);
            if let (Some(codec), Some(dims)) = (self.video_codec, announced)
                && codec != RecordedCodec::H264
            {
                self.open(frame.arrived, Some(TrackSpec::video(codec, dims, Bytes::new())));
                self.queue_audio(anchor, frame);
                return;
            }
            if self.video_codec.is_some() {
                let newest = frame.arrived;
                self.preroll.push_back(frame);
                while self
                    .preroll
                    .front()
                    .is_some_and(|f| diff_us(newest, f.arrived) > AUDIO_PREROLL.as_micros() as i64)
                {
                    self.preroll.pop_front();
                }
                return;
            }
            self.open(frame.arrived, None);
        }
        self.queue_audio(anchor, frame);
    }

    fn queue_audio(&mut self, anchor: (SystemTime, i64), frame: Frame) {
        let (Some(track), Some(time_ms)) = (self.audio_track, self.time_ms(anchor, frame.media_time_us)) else {
            return;
        };
        if time_ms < 0 {
            return;
        }
        self.queues[track].push_back(Queued { time_ms, keyframe: true, data: frame.data, since: Instant::now() });
    }

    fn video(&mut self, frame: Frame) {
        if self.start.is_none() {
            if !frame.keyframe {
                return;
            }
            let Some(codec) = self.video_codec else { return };
            let dims = video_dimensions(codec, &frame.data).unwrap_or_else(|| {
                tracing::warn!(stream = %self.ctx.stream, "no dimensions in the first keyframe, assuming 640x480");
                (640, 480)
            });
            self.video_anchor = Some((frame.arrived, frame.media_time_us));
            // The audio that came while waiting for the keyframe is kept: the file starts with
            // it, and the video track a little later.
            let start = self.preroll.front().map(|f| f.arrived).filter(|a| *a < frame.arrived).unwrap_or(frame.arrived);
            self.open(start, Some(TrackSpec::video(codec, dims, frame.data.clone())));
            if self.writer_gone {
                return;
            }
            if let Some(anchor) = self.audio_anchor {
                for f in std::mem::take(&mut self.preroll) {
                    self.queue_audio(anchor, f);
                }
            }
        }
        if self.video_resync {
            if !frame.keyframe {
                return;
            }
            self.video_resync = false;
        }
        if self.video_anchor.is_none() {
            // The file was opened by the audio: the video track starts at its first keyframe,
            // held until the next frame tells the frame period.
            let Some(first) = self.first_video.take() else {
                if frame.keyframe {
                    self.first_video = Some(frame);
                }
                return;
            };
            let period_us = frame.media_time_us - first.media_time_us;
            self.anchor_video(&first, Some(period_us));
            self.queue_video(first);
        }
        self.queue_video(frame);
    }

    /// Sets where the video track starts in a file the audio opened: at its first keyframe's
    /// arrival, moved (by half a frame at most) onto a whole number of frame periods from the
    /// start of the file. Timestamps are whole milliseconds: a frame sequence half a period off
    /// that grid rounds to the same frame index twice in tools that assume a constant frame
    /// rate (ffmpeg: "non monotonically increasing dts"), which the grid avoids.
    fn anchor_video(&mut self, first: &Frame, period_us: Option<i64>) {
        let Some(start) = self.start else { return };
        let snapped = snap_to_period(diff_us(first.arrived, start), period_us);
        let at = if snapped >= 0 {
            start + Duration::from_micros(snapped as u64)
        } else {
            start - Duration::from_micros(snapped.unsigned_abs())
        };
        self.video_anchor = Some((at, first.media_time_us));
    }

    /// Queues a video frame on the video track's timeline.
    fn queue_video(&mut self, frame: Frame) {
        let (Some(track), Some(anchor)) = (self.video_track, self.video_anchor) else { return };
        let Some(time_ms) = self.time_ms(anchor, frame.media_time_us) else { return };
        self.queues[track].push_back(Queued {
            time_ms,
            keyframe: frame.keyframe,
            data: frame.data,
            since: Instant::now(),
        });
    }

    /// A held first keyframe whose next frame never came: it starts the video track as it is.
    fn release_held_video(&mut self) {
        if let Some(first) = self.first_video.take() {
            self.anchor_video(&first, None);
            self.queue_video(first);
        }
    }

    /// Starts the file at wall time `start`.
    fn open(&mut self, start: SystemTime, video: Option<TrackSpec>) {
        self.start = Some(start);
        let mut tracks = Vec::new();
        tracks.extend(video);
        if self.audio_codec.is_some() {
            tracks.push(TrackSpec::opus());
        }
        if self.tx.send(WriterCmd::Open { tracks, start }).is_err() {
            self.writer_gone = true;
        }
    }

    /// Sends queued frames to the writer in time order; a track waits for the other at most
    /// [`INTERLEAVE_WAIT`] (all of them when `all`).
    fn flush(&mut self, all: bool) {
        loop {
            let fronts: Vec<Option<(i64, Instant)>> =
                self.queues.iter().map(|q| q.front().map(|f| (f.time_ms, f.since))).collect();
            let earliest = fronts.iter().enumerate().filter_map(|(i, f)| f.map(|f| (i, f))).min_by_key(|(_, f)| f.0);
            let Some((track, (_, since))) = earliest else { return };
            // A track that has not begun (video waiting for its first keyframe) holds nobody up.
            let begun = |i: usize| {
                if Some(i) == self.video_track { self.video_anchor.is_some() } else { self.audio_anchor.is_some() }
            };
            let others_ready = fronts.iter().enumerate().all(|(i, f)| f.is_some() || !begun(i));
            if !(others_ready || all || since.elapsed() >= INTERLEAVE_WAIT) {
                return;
            }
            let Some(frame) = self.queues[track].pop_front() else { return };
            self.send(track, frame);
            if self.writer_gone {
                return;
            }
        }
    }

    fn send(&mut self, track: usize, frame: Queued) {
        let is_video = Some(track) == self.video_track;
        // Only the writer keeps each track's times increasing: clamping a late frame of one
        // track to the other's latest time would bunch its frames together.
        let time_ms = frame.time_ms;
        match self.tx.try_send(WriterCmd::Frame { track, time_ms, keyframe: frame.keyframe, data: frame.data }) {
            Ok(()) => self.last_ms = self.last_ms.max(time_ms),
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                tracing::warn!(recording_id = %self.ctx.shared.spec.id, stream = %self.ctx.stream,
                    "recording writer is behind, dropping a frame");
                if is_video {
                    self.video_resync = true;
                    self.queues[track].retain(|f| f.keyframe);
                }
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => self.writer_gone = true,
        }
    }
}

/// `offset_us` moved to the nearest whole number of `period_us` (a plausible video frame period:
/// 1–200 ms; otherwise, or without one, unchanged), never before 0.
fn snap_to_period(offset_us: i64, period_us: Option<i64>) -> i64 {
    match period_us.filter(|p| (1_000..=200_000).contains(p)) {
        Some(p) => ((offset_us + p / 2).div_euclid(p) * p).max(0),
        None => offset_us,
    }
}

/// Owns a stream's file: writes what it is sent until the channel closes, then finishes the
/// file. Returns the file size and the error that stopped writing, if any.
fn writer_loop(
    shared: &Shared,
    stream: &StreamId,
    path: &Path,
    metadata: &Metadata,
    rx: std::sync::mpsc::Receiver<WriterCmd>,
) -> (u64, Option<String>) {
    let mut writer: Option<WebmWriter<std::fs::File>> = None;
    let mut error: Option<String> = None;
    let mut last_check = Instant::now();
    let (mut start, mut end) = (None, None);
    let fail = |writer: &mut Option<WebmWriter<std::fs::File>>, reason: String| {
        tracing::error!(session = %shared.spec.session, recording_id = %shared.spec.id, stream = %stream,
            file = %path.display(), %reason, "recording file write failed");
        if let Some(w) = writer.take() {
            let _ = w.finish_seekable();
        }
        shared.fail(format!("writing {}: {reason}", path.display()));
        Some(reason)
    };
    while let Ok(cmd) = rx.recv() {
        if error.is_some() {
            // Stop reading: the sender sees the channel close and ends the stream task.
            break;
        }
        match cmd {
            WriterCmd::End(last) => end = Some(last),
            WriterCmd::Open { tracks, start: at } => {
                start = Some(at);
                if let Err(e) = metadata.write(path, at, at, 0) {
                    tracing::warn!(recording_id = %shared.spec.id, stream = %stream, error = %e,
                        "cannot write the stream metadata file");
                }
                let opened = std::fs::File::create(path).and_then(|f| WebmWriter::new(f, &tracks));
                match opened {
                    Ok(w) => writer = Some(w),
                    Err(e) => error = fail(&mut writer, e.to_string()),
                }
            }
            WriterCmd::Frame { track, time_ms, keyframe, data } => {
                let Some(w) = writer.as_mut() else { continue };
                if let Err(e) = w.write_frame(track, time_ms, keyframe, &data) {
                    error = fail(&mut writer, e.to_string());
                } else if last_check.elapsed() >= Duration::from_secs(1) {
                    // Writes to a file whose folder was removed still succeed: look for it.
                    last_check = Instant::now();
                    if !path.exists() {
                        error = fail(&mut writer, "the file or its folder was removed".into());
                    }
                }
            }
        }
    }
    if let Some(w) = writer.take()
        && let Err(e) = w.finish_seekable().and_then(|mut out| out.flush())
    {
        error = fail(&mut writer, e.to_string());
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Some(start) = start
        && error.is_none()
        && let Err(e) = metadata.write(path, start, end.unwrap_or(start), size)
    {
        tracing::warn!(recording_id = %shared.spec.id, stream = %stream, error = %e,
            "cannot write the stream metadata file");
    }
    (size, error)
}

#[cfg(test)]
mod tests {
    use super::super::webm::tests::{TestMedia, decode_errors, ffprobe, test_media};
    use super::*;
    use openvidu_core::id::{ConnectionId, RecordingId, SessionId};
    use rtc::rtp::codec::opus::OpusPayloader;
    use rtc::rtp::codec::vp8::Vp8Payloader;
    use rtc::rtp::packetizer::{Packetizer, new_packetizer};
    use rtc::rtp::sequence::new_random_sequencer;
    use std::sync::OnceLock;
    use tokio::sync::broadcast;

    /// A video track starting half a frame off the file's grid is moved onto it: whole-ms
    /// timestamps then round to distinct frame indexes at a constant frame rate.
    #[test]
    fn the_video_start_snaps_to_its_frame_grid() {
        let period = 66_666; // 15 fps, as RTP's 90 kHz clock gives it in µs
        assert_eq!(snap_to_period(500_000, Some(period)), 533_328);
        assert_eq!(snap_to_period(20_000, Some(period)), 0);
        assert_eq!(snap_to_period(40_000, Some(period)), 66_666);
        assert_eq!(snap_to_period(500_000, None), 500_000);
        assert_eq!(snap_to_period(500_000, Some(0)), 500_000, "no period from a repeated timestamp");
        assert_eq!(snap_to_period(500_000, Some(900_000)), 500_000, "not a frame period");
        // The frames that follow land on distinct indexes of a 15 fps grid.
        let start = snap_to_period(500_000, Some(period));
        let indexes: Vec<i64> = (0..30)
            .map(|n| (start + n * period) / 1000)
            .map(|ms| ((ms as f64) * 15.0 / 1000.0).round() as i64)
            .collect();
        assert!(indexes.windows(2).all(|w| w[1] == w[0] + 1), "{indexes:?}");
    }

    /// 4 s of VP8 (15 fps, IVF frame numbers) and Opus (20 ms packets), made once.
    fn media() -> &'static TestMedia {
        static MEDIA: OnceLock<TestMedia> = OnceLock::new();
        MEDIA.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            test_media(dir.path(), 4)
        })
    }

    fn now_ms() -> u64 {
        epoch_ms(SystemTime::now()) as u64
    }

    fn spec(folder: &Path) -> RecordingSpec {
        RecordingSpec::new(
            SessionId::parse("ses_A").unwrap(),
            RecordingId::parse("ses_A").unwrap(),
            "ses_A",
            folder.to_path_buf(),
            now_ms(),
            super::super::RecordingKind::Individual,
        )
    }

    /// A fake publisher: its channels and a tap on them.
    struct FakePublisher {
        audio: broadcast::Sender<rtp::Packet>,
        video: broadcast::Sender<rtp::Packet>,
        info: RecordedStream,
    }

    impl FakePublisher {
        fn new(stream: &str) -> Self {
            let connection = stream.rsplit('_').take(2).collect::<Vec<_>>();
            let connection = format!("con_{}", connection[0]);
            let mut info =
                RecordedStream::new(StreamId::parse(stream).unwrap(), ConnectionId::parse(&connection).unwrap());
            info.client_data = "client".into();
            Self { audio: broadcast::channel(1024).0, video: broadcast::channel(1024).0, info }
        }

        fn tap(&self, audio: bool, video: bool) -> StreamTap {
            StreamTap {
                info: self.info.clone(),
                audio: audio.then(|| TrackTap::new(RecordedCodec::Opus, 48000, self.audio.clone(), None)),
                video: video.then(|| TrackTap::new(RecordedCodec::Vp8, 90000, self.video.clone(), None)),
            }
        }

        /// Sends `secs` seconds of media in real time (video from frame 0, a keyframe).
        async fn play(&self, secs: f64, audio: bool, video: bool) {
            let (frames, packets) = media();
            let t0 = Instant::now();
            let mut vp = new_packetizer(
                t0,
                1200,
                96,
                1,
                Box::new(Vp8Payloader::default()),
                Box::new(new_random_sequencer()),
                90000,
            );
            let mut ap =
                new_packetizer(t0, 1200, 111, 2, Box::new(OpusPayloader), Box::new(new_random_sequencer()), 48000);
            let mut schedule: Vec<(u64, bool, Bytes)> = Vec::new();
            if video {
                schedule.extend(frames.iter().map(|(n, f)| (n * 1000 / 15, true, f.clone())));
            }
            if audio {
                schedule.extend(packets.iter().enumerate().map(|(i, p)| (i as u64 * 20, false, p.clone())));
            }
            schedule.sort_by_key(|s| s.0);
            for (at, is_video, data) in schedule {
                if at as f64 >= secs * 1000.0 {
                    break;
                }
                tokio::time::sleep_until((t0 + Duration::from_millis(at)).into()).await;
                if is_video {
                    for p in vp.packetize(Instant::now(), &data, 6000).unwrap() {
                        let _ = self.video.send(p);
                    }
                } else {
                    for p in ap.packetize(Instant::now(), &data, 960).unwrap() {
                        let _ = self.audio.send(p);
                    }
                }
            }
        }
    }

    /// Unzips `<folder>/ses_A.zip` into `dir`; returns the entry names and the sync file.
    fn unzip(folder: &Path, dir: &Path) -> (Vec<String>, IndividualSyncJson) {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(folder.join("ses_A.zip")).unwrap()).unwrap();
        let mut names = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut out = std::fs::File::create(dir.join(&name)).unwrap();
            std::io::copy(&mut f, &mut out).unwrap();
            names.push(name);
        }
        let sync = serde_json::from_slice(&std::fs::read(dir.join("ses_A.json")).unwrap()).unwrap();
        (names, sync)
    }

    fn duration(probe: &serde_json::Value) -> f64 {
        probe["format"]["duration"].as_str().unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_two_streams_in_sync_into_a_zip() {
        media();
        let folder = tempfile::tempdir().unwrap();
        let (events, _events_rx) = mpsc::unbounded_channel();
        let rec = Arc::new(IndividualRecorder::start(spec(folder.path()), events).unwrap());
        let a = FakePublisher::new("str_CAM_AaAa_con_A");
        let b = FakePublisher::new("str_CAM_BbBb_con_B");
        rec.add_stream(a.tap(true, true)).unwrap();
        let late = async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            rec.add_stream(b.tap(true, true)).unwrap();
            b.play(2.0, true, true).await;
        };
        tokio::join!(a.play(3.0, true, true), late);
        let report = rec.stop().await.unwrap();
        let remaining: Vec<_> =
            std::fs::read_dir(folder.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(remaining, vec!["ses_A.zip".to_string()]);
        let out = tempfile::tempdir().unwrap();
        let (mut names, sync) = unzip(folder.path(), out.path());
        names.sort();
        let mut expected: Vec<String> = sync.files.iter().map(|f| f.name.clone()).collect();
        expected.push("ses_A.json".into());
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(sync.files.len(), 2);
        let (fa, fb) = (&sync.files[0], &sync.files[1]);
        assert_eq!(fa.name, "str_CAM_AaAa_con_A.webm");
        assert_eq!(fb.name, "str_CAM_BbBb_con_B.webm");
        assert!(fa.has_audio && fa.has_video && fa.type_of_video.is_some());
        assert!(fa.start_time_offset >= 0 && fa.start_time_offset < 300, "{fa:?}");
        let late = fb.start_time_offset - fa.start_time_offset;
        assert!((800..=1200).contains(&late), "second stream starts {late} ms later");
        for (f, secs) in [(fa, 3.0), (fb, 2.0)] {
            let path = out.path().join(&f.name);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.size);
            let probe = ffprobe(&path);
            let streams = probe["streams"].as_array().unwrap();
            assert_eq!(streams.len(), 2, "{probe}");
            assert_eq!(streams[0]["codec_name"], "vp8");
            assert_eq!(streams[0]["width"], 320);
            assert_eq!(streams[0]["height"], 240);
            assert_eq!(streams[1]["codec_name"], "opus");
            let start = |i: usize| streams[i]["start_time"].as_str().unwrap().parse::<f64>().unwrap();
            assert!(start(0).abs() < 0.05 && start(1).abs() < 0.1, "starts {} {}", start(0), start(1));
            let d = duration(&probe);
            assert!((d - secs).abs() <= secs * 0.1, "{} lasts {d} s, sent {secs} s", f.name);
            assert_eq!(decode_errors(&path), "");
            let span = (f.end_time_offset - f.start_time_offset) as f64 / 1000.0;
            assert!((span - secs).abs() <= secs * 0.1, "{} spans {span} s", f.name);
        }
        assert_eq!(report.size, fa.size + fb.size);
        assert!(report.has_audio && report.has_video);
        assert_eq!(report.files, vec!["ses_A.zip".to_string()]);
        assert!((report.duration - 3.0).abs() < 0.3, "duration {}", report.duration);
        // A second stop returns the same report.
        assert_eq!(rec.stop().await.unwrap(), report);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_recorded_again_gets_a_suffix() {
        media();
        let folder = tempfile::tempdir().unwrap();
        let (events, _events_rx) = mpsc::unbounded_channel();
        let rec = IndividualRecorder::start(spec(folder.path()), events).unwrap();
        let a = FakePublisher::new("str_MIC_AaAa_con_A");
        // Audio only: the stream has no video tap.
        rec.add_stream(a.tap(true, false)).unwrap();
        a.play(1.0, true, false).await;
        rec.remove_stream(&a.info.stream).await;
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.path().join(".stream.str_MIC_AaAa_con_A")).unwrap()).unwrap();
        assert_eq!(meta["name"], "str_MIC_AaAa_con_A.webm");
        assert_eq!(meta["streamId"], "str_MIC_AaAa_con_A");
        assert_eq!(meta["hasVideo"], false);
        assert!(meta.get("typeOfVideo").is_none());
        assert!(meta["size"].as_u64().unwrap() > 0);
        assert!((meta["duration"].as_i64().unwrap() - 1000).abs() < 100, "{meta}");
        rec.add_stream(a.tap(true, false)).unwrap();
        a.play(1.0, true, false).await;
        let report = rec.stop().await.unwrap();
        let remaining: Vec<_> =
            std::fs::read_dir(folder.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(remaining, vec!["ses_A.zip".to_string()]);
        let out = tempfile::tempdir().unwrap();
        let (_, sync) = unzip(folder.path(), out.path());
        let names: Vec<&str> = sync.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["str_MIC_AaAa_con_A.webm", "str_MIC_AaAa_con_A-1.webm"]);
        for f in &sync.files {
            assert!(f.has_audio && !f.has_video && f.type_of_video.is_none(), "{f:?}");
            let probe = ffprobe(&out.path().join(&f.name));
            assert_eq!(probe["streams"].as_array().unwrap().len(), 1);
            assert_eq!(probe["streams"][0]["codec_name"], "opus");
            assert!((duration(&probe) - 1.0).abs() <= 0.1, "{probe}");
        }
        assert!(sync.files[1].start_time_offset >= sync.files[0].end_time_offset);
        assert!(report.has_audio && !report.has_video);
        assert!((report.duration - 2.0).abs() < 0.3);
    }

    #[tokio::test]
    async fn an_unwritable_folder_fails_at_start() {
        let folder = tempfile::tempdir().unwrap();
        let (events, _rx) = mpsc::unbounded_channel();
        let missing = folder.path().join("missing");
        assert!(matches!(IndividualRecorder::start(spec(&missing), events.clone()), Err(MediaError::Recording(_))));
        let file = folder.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(IndividualRecorder::start(spec(&file), events), Err(MediaError::Recording(_))));
    }

    #[tokio::test]
    async fn no_streams_give_a_zip_with_only_the_sync_file() {
        let folder = tempfile::tempdir().unwrap();
        let (events, _rx) = mpsc::unbounded_channel();
        let rec = IndividualRecorder::start(spec(folder.path()), events).unwrap();
        // A stream with nothing to record is skipped.
        let a = FakePublisher::new("str_CAM_AaAa_con_A");
        rec.add_stream(a.tap(false, false)).unwrap();
        let report = rec.stop().await.unwrap();
        assert_eq!(report.duration, 0.0);
        assert_eq!(report.size, 0);
        assert_eq!(report.files, vec!["ses_A.zip".to_string()]);
        let out = tempfile::tempdir().unwrap();
        let (names, sync) = unzip(folder.path(), out.path());
        assert_eq!(names, vec!["ses_A.json".to_string()]);
        assert!(sync.files.is_empty());
        let text = std::fs::read_to_string(out.path().join("ses_A.json")).unwrap();
        assert!(text.contains("\n  \"files\": []"), "pretty-printed: {text}");
        assert!(rec.add_stream(a.tap(true, true)).is_err(), "no streams after stop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_folder_fails_the_recording() {
        media();
        let parent = tempfile::tempdir().unwrap();
        let folder = parent.path().join("ses_A");
        std::fs::create_dir(&folder).unwrap();
        let (events, mut events_rx) = mpsc::unbounded_channel();
        let rec = IndividualRecorder::start(spec(&folder), events).unwrap();
        let a = FakePublisher::new("str_CAM_AaAa_con_A");
        rec.add_stream(a.tap(true, true)).unwrap();
        let remove = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            std::fs::remove_dir_all(&folder).unwrap();
        };
        tokio::join!(a.play(2.5, true, true), remove);
        let event = tokio::time::timeout(Duration::from_secs(1), events_rx.recv()).await.unwrap().unwrap();
        assert!(matches!(event, MediaEvent::RecordingFailed { .. }), "{event:?}");
        let started = Instant::now();
        let result = rec.stop().await;
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        // Only one failure event.
        assert!(events_rx.try_recv().is_err());
    }
}
