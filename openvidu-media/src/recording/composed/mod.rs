//! COMPOSED recording: every stream decoded, laid out, mixed and encoded into one MP4 (H.264 +
//! AAC, thumbnail `<recordingId>.jpg`), or one Opus WebM when audio-only (spec §3.1).
//!
//! # Design
//!
//! The codecs are FFmpeg's, run as processes through `tokio::process`; the rest is Rust:
//!
//! ```text
//!  tap ─► FrameAssembler ─► IVF / Annex-B ─► ffmpeg (decode, fit) ─► VideoSlot ─┐
//!  tap ─► FrameAssembler ─► Ogg/Opus ──────► ffmpeg (decode) ──────► PcmBuffer ─┤
//!                                                                     compositor thread
//!            <name>.mp4 ◄─ remux at stop ◄─ temp files ◄─ ffmpeg (x264 / AAC / Opus) ◄┘
//! ```
//!
//! * **Why FFmpeg's CLI**: one mature codec stack for VP8/VP9/H.264/Opus decoding and x264/AAC/
//!   Opus encoding, from the distribution's package; no C bindings to build or keep in step with
//!   library versions; a crashing or misbehaving codec (fed by the network!) takes down one
//!   process, never the node; and processes can be started ahead of time ([`ComposerPool`]).
//! * **Decoders** ([`decode`]): one process per stream and kind, fed whole frames rebuilt from
//!   RTP, low-latency options (`-probesize 32 -analyzeduration 0 -flags low_delay`,
//!   `-fps_mode passthrough`, `-flush_packets 1`), one thread each. Video comes out as yuv420p at
//!   the source's aspect ratio fitted into the canvas; audio as s16le 48 kHz stereo.
//! * **Compositor** ([`compositor`]): one Rust thread per recording, on the wall clock. It draws
//!   each stream's latest picture into its [`layout`] cell (nearest-neighbour scaling, aspect
//!   kept, black bars; only changed cells), emits one frame per frame interval and mixes
//!   ([`mix`]) one 20 ms chunk every 20 ms. Frame and sample counts follow wall time, so audio
//!   and video stay in sync without timestamps, and the canvas starts black at once: the first
//!   encoded frame reaches the file a few frame intervals after start.
//! * **Encoders** ([`encode`]): the video encoder reads raw frames on stdin and writes H.264
//!   (`-preset veryfast -tune zerolatency`) in MPEG-TS on stdout; the audio one AAC in ADTS
//!   (or Opus in Ogg). Output on stdout is what lets [`ComposerPool`] start them before the
//!   recording (and its folder) is known; Rust copies it into hidden temporary files, and at stop
//!   remuxes them (`-c copy`, `+faststart`) into the final file, cuts the thumbnail from the
//!   middle and measures the result with ffprobe.
//! * **Failures**: a decoder dying only blanks its cell until the next keyframe restarts it. The
//!   encoder dying or a write error (disk full, folder removed) sends
//!   [`MediaEvent::RecordingFailed`] once, and [`Recorder::stop`] returns
//!   [`MediaError::Recording`]. Stop always returns: every wait is bounded and processes that
//!   do not exit within 5 s are killed. Every process is `kill_on_drop`.
//!
//! Streams with video get a cell (streams without video are only mixed). Temporary files of a
//! recorder dropped without `stop` stay in the folder (hidden, `.<id>.composed.*`).

mod canvas;
mod compositor;
mod decode;
mod encode;
mod ffmpeg;
mod layout;
mod mix;
mod pool;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::id::{StreamId, TypeOfVideo};
use openvidu_core::model::RecordingLayout;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::compositor::{AudioEntry, Compositor, StreamsView, VideoEntry, VideoOut};
use self::decode::{DecoderEnv, VideoSlot};
use self::encode::Encoder;
use self::ffmpeg::LogIds;
use self::mix::PcmBuffer;
pub use self::pool::ComposerPool;
use self::pool::{EncoderFormat, valid_format};
use super::tap::{RecordedCodec, StreamTap};
use super::{RecordingKind, RecordingReport, RecordingSpec};
use crate::endpoint::lock;
use crate::node::{MediaError, MediaEvent};

/// The shortest COMPOSED recording: stopping earlier waits until it is this long.
const MIN_RECORDING: Duration = Duration::from_millis(500);
/// How long stop waits for the compositor thread before killing the encoders under it.
const COMPOSITOR_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for the video encoder (the compositor waits beyond that).
const VIDEO_QUEUE: usize = 4;
/// 20 ms chunks queued for the audio encoder: 10 s, enough for an encoder started cold.
const AUDIO_QUEUE: usize = 500;

/// A task aborted when this handle drops.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// State shared by the recorder and its tasks.
pub(crate) struct Shared {
    /// Log ids.
    pub(crate) ids: LogIds,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// Why the recording failed, once it has.
    failure: OnceLock<String>,
    /// Set when stop begins: exits and errors from then on are expected.
    stopping: AtomicBool,
    started: Instant,
    /// Time from start to the first bytes of encoded output in the folder.
    first_output: OnceLock<Duration>,
}

impl Shared {
    /// Whether stop has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Records a failure: the first one is logged and reported with
    /// [`MediaEvent::RecordingFailed`]; stop then returns it.
    pub(crate) fn fail(&self, reason: String) {
        if self.is_stopping() {
            tracing::debug!(session = %self.ids.session, recording_id = %self.ids.recording, %reason,
                "COMPOSED recording error while stopping");
            return;
        }
        if self.failure.set(reason.clone()).is_ok() {
            tracing::error!(session = %self.ids.session, recording_id = %self.ids.recording, %reason,
                "COMPOSED recording failed");
            let _ = self.events.send(MediaEvent::RecordingFailed {
                session: self.ids.session.clone(),
                recording: self.ids.recording.clone(),
                reason,
            });
        }
    }

    /// Notes the first encoded bytes written.
    pub(crate) fn mark_first_output(&self) {
        let elapsed = self.started.elapsed();
        if self.first_output.set(elapsed).is_ok() {
            tracing::debug!(session = %self.ids.session, recording_id = %self.ids.recording,
                ms = elapsed.as_millis() as u64, "first COMPOSED output written");
        }
    }
}

/// The output format of a recording.
#[derive(Clone, Debug)]
struct Output {
    layout: RecordingLayout,
    width: u32,
    height: u32,
}

/// The inputs of the video and audio encoders, and whether the video one was warm.
type EncoderInputs = (Option<mpsc::Sender<Bytes>>, Option<mpsc::Sender<Bytes>>, bool);

/// A stream's decoding tasks.
struct StreamWorkers {
    _tasks: Vec<AbortOnDrop>,
}

/// The compositor thread's controls.
struct CompositorHandle {
    stop: std::sync::mpsc::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// Sends on drop: tells stop the compositor thread has ended, however it ended.
struct DoneGuard(Option<oneshot::Sender<()>>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A running COMPOSED recording (boxed: it is one variant of
/// [`ActiveRecording`](super::ActiveRecording)); its operations are [`Recorder`]'s.
pub(crate) struct ComposedRecorder(Box<Recorder>);

impl ComposedRecorder {
    /// Starts composing into `spec.folder`: takes the encoders (warm ones from `pool`) and
    /// starts the compositor, which draws a black canvas until streams are added.
    pub(crate) async fn start(
        spec: RecordingSpec,
        pool: &ComposerPool,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        Recorder::start(spec, pool, events).await.map(|r| Self(Box::new(r)))
    }
}

impl std::ops::Deref for ComposedRecorder {
    type Target = Recorder;

    fn deref(&self) -> &Recorder {
        &self.0
    }
}

/// The state and operations of a COMPOSED recording.
pub(crate) struct Recorder {
    spec: RecordingSpec,
    output: Output,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    view: Arc<Mutex<StreamsView>>,
    streams: Mutex<HashMap<StreamId, StreamWorkers>>,
    compositor: Mutex<Option<CompositorHandle>>,
    encoders: Mutex<Vec<Encoder>>,
    outcome: tokio::sync::OnceCell<Result<RecordingReport, String>>,
}

impl Recorder {
    /// See [`ComposedRecorder::start`].
    async fn start(
        spec: RecordingSpec,
        pool: &ComposerPool,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let RecordingKind::Composed { layout, width, height, frame_rate } = spec.kind.clone() else {
            return Err(MediaError::Unsupported("not a COMPOSED recording".into()));
        };
        if layout == RecordingLayout::Custom {
            return Err(MediaError::Unsupported("CUSTOM recording layouts are not supported".into()));
        }
        if !spec.has_audio && !spec.has_video {
            return Err(MediaError::Recording("a recording needs audio or video".into()));
        }
        if spec.has_video && !valid_format(width, height, frame_rate) {
            return Err(MediaError::Recording(format!(
                "cannot compose {width}x{height} at {frame_rate} fps (even sizes from 16x16, 1 to 120 fps)"
            )));
        }
        if !spec.folder.is_dir() {
            return Err(MediaError::Recording(format!("the folder {} does not exist", spec.folder.display())));
        }
        let ids = LogIds { session: spec.session.clone(), recording: spec.id.clone(), stream: None };
        let shared = Arc::new(Shared {
            ids,
            events,
            failure: OnceLock::new(),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
            first_output: OnceLock::new(),
        });
        let output = Output { layout, width, height };
        let mut encoders = Vec::new();
        let started = Self::start_encoders(&spec, pool, &shared, &mut encoders);
        let (video, audio, warm) = match started {
            Ok(outputs) => outputs,
            Err(e) => {
                // Expected exits from here: no RecordingFailed for a start that failed.
                shared.stopping.store(true, Ordering::SeqCst);
                remove_temps(&encoders).await;
                return Err(e);
            }
        };
        let video = video.map(|frames| VideoOut { frames, width, height, fps: frame_rate, layout });
        let view = Arc::new(Mutex::new(StreamsView::default()));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let compositor = Compositor { view: view.clone(), video, audio, stop: stop_rx };
        let (session, recording) = (spec.session.clone(), spec.id.clone());
        let thread = std::thread::Builder::new().name(format!("composer-{}", spec.id)).spawn(move || {
            let _done = DoneGuard(Some(done_tx));
            let stats = compositor.run();
            tracing::debug!(%session, recording_id = %recording, frames = stats.frames, drawn = stats.drawn,
                chunks = stats.chunks, "compositor stopped");
        });
        if let Err(e) = thread {
            shared.stopping.store(true, Ordering::SeqCst);
            remove_temps(&encoders).await;
            return Err(MediaError::Recording(format!("cannot start the compositor thread: {e}")));
        }
        tracing::info!(session = %spec.session, recording_id = %spec.id, layout = ?output.layout,
            width, height, fps = frame_rate, has_audio = spec.has_audio, has_video = spec.has_video, warm,
            "COMPOSED recording started");
        Ok(Self {
            ffmpeg: pool.ffmpeg().to_owned(),
            ffprobe: pool.ffprobe().to_owned(),
            runtime: tokio::runtime::Handle::current(),
            spec,
            output,
            shared,
            view,
            streams: Mutex::default(),
            compositor: Mutex::new(Some(CompositorHandle { stop: stop_tx, done: done_rx })),
            encoders: Mutex::new(encoders),
            outcome: tokio::sync::OnceCell::new(),
        })
    }

    /// Takes and wires the encoders the spec needs; returns the inputs of the video and audio
    /// encoders and whether the video one was warm.
    fn start_encoders(
        spec: &RecordingSpec,
        pool: &ComposerPool,
        shared: &Arc<Shared>,
        encoders: &mut Vec<Encoder>,
    ) -> Result<EncoderInputs, MediaError> {
        let RecordingKind::Composed { width, height, frame_rate, .. } = spec.kind else {
            return Err(MediaError::Unsupported("not a COMPOSED recording".into()));
        };
        let mut warm = false;
        let mut video = None;
        if spec.has_video {
            let (child, was_warm) = pool.take(EncoderFormat::Video { width, height, fps: frame_rate })?;
            warm = was_warm;
            let (tx, rx) = mpsc::channel(VIDEO_QUEUE);
            encoders.push(Encoder::start(child, "video", temp_path(spec, "ts"), rx, shared.clone(), true)?);
            video = Some(tx);
        }
        let mut audio = None;
        if spec.has_audio {
            let (format, ext) = if spec.has_video { (EncoderFormat::Aac, "aac") } else { (EncoderFormat::Opus, "ogg") };
            let (child, _) = pool.take(format)?;
            let (tx, rx) = mpsc::channel(AUDIO_QUEUE);
            let primary = !spec.has_video;
            encoders.push(Encoder::start(child, "audio", temp_path(spec, ext), rx, shared.clone(), primary)?);
            audio = Some(tx);
        }
        Ok((video, audio, warm))
    }

    /// Adds a stream to the layout (if it has video and the recording too) and to the mix (if
    /// it has Opus audio and the recording has audio). Adding a stream again replaces it.
    pub(crate) fn add_stream(&self, tap: StreamTap) -> Result<(), MediaError> {
        if self.shared.is_stopping() {
            return Err(MediaError::Recording(format!("the recording {} is stopping", self.spec.id)));
        }
        let StreamTap { info, audio, video } = tap;
        let stream = info.stream.clone();
        let env = DecoderEnv {
            ffmpeg: self.ffmpeg.clone(),
            ids: self.shared.ids.with_stream(&stream),
            max_w: self.output.width,
            max_h: self.output.height,
        };
        let mut tasks = Vec::new();
        let mut video_entry = None;
        let mut audio_entry = None;
        if self.spec.has_video
            && let Some(track) = video.filter(|t| t.codec.is_video())
        {
            let slot = Arc::new(VideoSlot::default());
            tasks.push(AbortOnDrop(self.runtime.spawn(decode::run_video(env.clone(), track, slot.clone()))));
            let screen = info.type_of_video == Some(TypeOfVideo::Screen);
            video_entry = Some(VideoEntry { stream: stream.clone(), screen, slot });
        }
        if self.spec.has_audio
            && let Some(track) = audio.filter(|t| t.codec == RecordedCodec::Opus)
        {
            let pcm = Arc::new(Mutex::new(PcmBuffer::default()));
            tasks.push(AbortOnDrop(self.runtime.spawn(decode::run_audio(env, track, pcm.clone()))));
            audio_entry = Some(AudioEntry { stream: stream.clone(), pcm });
        }
        tracing::info!(session = %self.spec.session, recording_id = %self.spec.id, %stream,
            video = video_entry.is_some(), audio = audio_entry.is_some(), "stream added to the COMPOSED recording");
        // The old workers of a stream added again are aborted once the lock is released.
        let replaced = lock(&self.streams).insert(stream.clone(), StreamWorkers { _tasks: tasks });
        {
            let mut view = lock(&self.view);
            view.remove(&stream);
            view.video.extend(video_entry);
            view.audio.extend(audio_entry);
        }
        drop(replaced);
        Ok(())
    }

    /// Removes a stream from the layout and the mix; its decoders are killed.
    pub(crate) async fn remove_stream(&self, stream: &StreamId) {
        lock(&self.view).remove(stream);
        let removed = lock(&self.streams).remove(stream);
        if removed.is_some() {
            tracing::info!(session = %self.spec.session, recording_id = %self.spec.id, %stream,
                "stream removed from the COMPOSED recording");
        }
    }

    /// Stops, finishes `<name>.mp4` (or `.webm`) and the thumbnail. Concurrent and repeated
    /// calls share one outcome.
    pub(crate) async fn stop(&self) -> Result<RecordingReport, MediaError> {
        self.outcome.get_or_init(|| self.finish()).await.clone().map_err(MediaError::Recording)
    }

    /// Time from start to the first encoded bytes in the folder, once written.
    #[cfg(test)]
    pub(crate) fn first_output(&self) -> Option<Duration> {
        self.shared.first_output.get().copied()
    }

    async fn finish(&self) -> Result<RecordingReport, String> {
        let ids = &self.shared.ids;
        // A recording stopped right after it started still gets a few frames, so the final
        // file has decodable streams (the muxer needs them to find the codec parameters).
        let shortest = MIN_RECORDING.saturating_sub(self.shared.started.elapsed());
        if !shortest.is_zero() && self.shared.failure.get().is_none() {
            tokio::time::sleep(shortest).await;
        }
        self.shared.stopping.store(true, Ordering::SeqCst);
        let stopping_at = Instant::now();
        // 1. The compositor: its last frame and chunk, then it drops the encoders' inputs.
        let compositor = lock(&self.compositor).take();
        let mut encoders = std::mem::take(&mut *lock(&self.encoders));
        if let Some(CompositorHandle { stop, done }) = compositor {
            let _ = stop.send(());
            if tokio::time::timeout(COMPOSITOR_STOP_TIMEOUT, done).await.is_err() {
                tracing::warn!(session = %ids.session, recording_id = %ids.recording,
                    "the compositor does not stop; killing the encoders");
                encoders.iter_mut().for_each(Encoder::kill);
            }
        }
        // 2. The decoders.
        let streams = std::mem::take(&mut *lock(&self.streams));
        drop(streams);
        *lock(&self.view) = StreamsView::default();
        // 3. The encoders flush and exit.
        let temps: Vec<(&'static str, PathBuf)> = encoders.iter().map(|e| (e.name, e.temp.clone())).collect();
        let mut error = None;
        for encoder in encoders {
            if let Err(e) = encoder.finish(ids).await {
                error.get_or_insert(e);
            }
        }
        if let Some(reason) = self.shared.failure.get().cloned().or(error) {
            remove_paths(temps.iter().map(|(_, p)| p)).await;
            tracing::warn!(session = %ids.session, recording_id = %ids.recording, %reason, "COMPOSED recording failed");
            return Err(reason);
        }
        // 4. The final file, thumbnail and report.
        let result = self.finalize(&temps).await;
        remove_paths(temps.iter().map(|(_, p)| p)).await;
        if let Ok(report) = &result {
            tracing::info!(session = %ids.session, recording_id = %ids.recording, size = report.size,
                duration = report.duration, stop_ms = stopping_at.elapsed().as_millis() as u64,
                "COMPOSED recording finished");
        }
        result
    }

    async fn finalize(&self, temps: &[(&'static str, PathBuf)]) -> Result<RecordingReport, String> {
        let ids = &self.shared.ids;
        let video = temps.iter().find(|(n, _)| *n == "video").map(|(_, p)| p.as_path());
        let audio = temps.iter().find(|(n, _)| *n == "audio").map(|(_, p)| p.as_path());
        let ext = if video.is_some() { "mp4" } else { "webm" };
        let file_name = format!("{}.{ext}", self.spec.name);
        let out = self.spec.folder.join(&file_name);
        encode::mux(&self.ffmpeg, video, audio, &out, ids).await?;
        let probe = encode::probe(&self.ffprobe, &out, ids).await?;
        let size = tokio::fs::metadata(&out).await.map_err(|e| format!("cannot read {}: {e}", out.display()))?.len();
        let mut files = vec![file_name];
        if probe.has_video {
            let thumb_name = format!("{}.jpg", self.spec.id);
            let thumb = self.spec.folder.join(&thumb_name);
            match encode::thumbnail(&self.ffmpeg, &out, probe.duration / 2.0, &thumb, ids).await {
                Ok(()) => files.push(thumb_name),
                Err(reason) => tracing::warn!(session = %ids.session, recording_id = %ids.recording, %reason,
                    "no thumbnail"),
            }
        }
        Ok(RecordingReport {
            size,
            duration: probe.duration,
            has_audio: probe.has_audio,
            has_video: probe.has_video,
            files,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Without stop: the compositor ends when its stop channel closes, the decoders with
        // their tasks and the encoders with their monitors (kill_on_drop).
        self.shared.stopping.store(true, Ordering::SeqCst);
    }
}

/// `.<id>.composed.<ext>` in the recording folder.
fn temp_path(spec: &RecordingSpec, ext: &str) -> PathBuf {
    spec.folder.join(format!(".{}.composed.{ext}", spec.id))
}

async fn remove_temps(encoders: &[Encoder]) {
    remove_paths(encoders.iter().map(|e| &e.temp)).await;
}

async fn remove_paths<'a>(paths: impl Iterator<Item = &'a PathBuf>) {
    for path in paths {
        let _ = tokio::fs::remove_file(path).await;
    }
}
