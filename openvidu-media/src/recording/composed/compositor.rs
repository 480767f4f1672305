//! The compositor: one thread per recording that, on the wall clock, draws the canvas at the
//! output frame rate and mixes a 20 ms audio chunk every 20 ms, and hands both to the encoders.
//!
//! The thread emits exactly one frame per frame interval and one chunk per 20 ms of wall time
//! since the start — when it falls behind (CPU starvation, an encoder reading slowly) it catches
//! up by repeating the current canvas — so the video's frame count and the audio's sample count
//! both measure the recording's real duration and stay in sync without timestamps. The canvas
//! is only redrawn where a stream's picture changed (or the layout did), and an unchanged canvas
//! is handed on again without a copy.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::id::StreamId;
use openvidu_core::model::RecordingLayout;
use tokio::sync::mpsc;

use super::canvas::Canvas;
use super::decode::VideoSlot;
use super::layout::{Cell, CellInput, Rect, layout};
use super::mix::{CHUNK_MS, PcmBuffer, mix_chunk};
use crate::endpoint::lock;

/// The streams being composed, shared by the recorder (which adds and removes them) and the
/// compositor thread. `generation` changes with every change, so the thread re-lays out.
#[derive(Default)]
pub(crate) struct StreamsView {
    /// Bumped on every change.
    pub(crate) generation: u64,
    /// Streams with video, in the order they were added.
    pub(crate) video: Vec<VideoEntry>,
    /// Streams with audio.
    pub(crate) audio: Vec<AudioEntry>,
}

impl StreamsView {
    /// Forgets `stream`.
    pub(crate) fn remove(&mut self, stream: &StreamId) {
        self.video.retain(|v| &v.stream != stream);
        self.audio.retain(|a| &a.stream != stream);
        self.generation += 1;
    }
}

/// A stream's video for the compositor.
#[derive(Clone)]
pub(crate) struct VideoEntry {
    /// The stream.
    pub(crate) stream: StreamId,
    /// A screen share (featured by presentation layouts).
    pub(crate) screen: bool,
    /// Its latest picture.
    pub(crate) slot: Arc<VideoSlot>,
}

/// A stream's audio for the mixer.
#[derive(Clone)]
pub(crate) struct AudioEntry {
    /// The stream.
    pub(crate) stream: StreamId,
    /// Its decoded PCM.
    pub(crate) pcm: Arc<Mutex<PcmBuffer>>,
}

/// Where the composed video goes.
pub(crate) struct VideoOut {
    /// Raw yuv420p frames to the encoder's writer.
    pub(crate) frames: mpsc::Sender<Bytes>,
    /// Canvas width.
    pub(crate) width: u32,
    /// Canvas height.
    pub(crate) height: u32,
    /// Frames per second.
    pub(crate) fps: u32,
    /// The layout.
    pub(crate) layout: RecordingLayout,
}

/// One recording's compositor, run on its own thread by [`Compositor::run`].
pub(crate) struct Compositor {
    /// The streams.
    pub(crate) view: Arc<Mutex<StreamsView>>,
    /// The video output, if the recording has video.
    pub(crate) video: Option<VideoOut>,
    /// Mixed s16le chunks to the audio encoder's writer, if the recording has audio.
    pub(crate) audio: Option<mpsc::Sender<Bytes>>,
    /// Closed (or sent to) to stop.
    pub(crate) stop: std::sync::mpsc::Receiver<()>,
}

/// What a compositor produced.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CompositorStats {
    /// Frames handed to the video encoder.
    pub(crate) frames: u64,
    /// Frames drawn (the others repeated the canvas).
    pub(crate) drawn: u64,
    /// Audio chunks handed to the audio encoder.
    pub(crate) chunks: u64,
}

/// What the video side remembers between frames.
struct VideoState {
    out: VideoOut,
    canvas: Canvas,
    generation: Option<u64>,
    entries: Vec<VideoEntry>,
    cells: Vec<Cell>,
    /// The slot counter last drawn, per stream index.
    drawn: Vec<Option<u64>>,
    frame: Option<Bytes>,
}

impl VideoState {
    /// Redraws what changed; whether the canvas changed.
    fn render(&mut self, view: &Mutex<StreamsView>) -> bool {
        let mut changed = false;
        {
            let view = lock(view);
            if self.generation != Some(view.generation) {
                self.generation = Some(view.generation);
                self.entries = view.video.clone();
                let inputs: Vec<CellInput> = self.entries.iter().map(|e| CellInput { screen: e.screen }).collect();
                self.cells = layout(&self.out.layout, self.out.width, self.out.height, &inputs);
                self.drawn = vec![None; self.entries.len()];
                self.canvas.clear();
                changed = true;
            }
        }
        let mut redrawn: Vec<Rect> = Vec::new();
        for cell in &self.cells {
            let Some(entry) = self.entries.get(cell.stream) else {
                continue;
            };
            let (seq, picture) = entry.slot.get();
            let stale = self.drawn.get(cell.stream).copied().flatten() != Some(seq);
            if !stale && !redrawn.iter().any(|r| r.overlaps(&cell.rect)) {
                continue;
            }
            match picture {
                Some(picture) => self.canvas.draw(cell.rect, &picture),
                None => self.canvas.fill_black(cell.rect),
            }
            if let Some(drawn) = self.drawn.get_mut(cell.stream) {
                *drawn = Some(seq);
            }
            redrawn.push(cell.rect);
        }
        changed || !redrawn.is_empty()
    }
}

impl Compositor {
    /// Runs until stopped (or both encoders are gone).
    pub(crate) fn run(self) -> CompositorStats {
        let Self { view, video, audio, stop } = self;
        let mut video = video.map(|out| VideoState {
            canvas: Canvas::new(out.width, out.height),
            out,
            generation: None,
            entries: Vec::new(),
            cells: Vec::new(),
            drawn: Vec::new(),
            frame: None,
        });
        let mut audio = audio;
        let mut audio_generation = None;
        let mut audio_entries: Vec<AudioEntry> = Vec::new();
        let mut stats = CompositorStats::default();
        let start = Instant::now();
        loop {
            let elapsed = start.elapsed();
            if let Some(state) = video.as_mut() {
                let fps = u128::from(state.out.fps.max(1));
                let due = (elapsed.as_nanos() * fps / 1_000_000_000) as u64 + 1;
                if stats.frames < due {
                    if state.render(&view) || state.frame.is_none() {
                        state.frame = Some(Bytes::copy_from_slice(state.canvas.bytes()));
                        stats.drawn += 1;
                    }
                    let frame = state.frame.clone().unwrap_or_default();
                    while stats.frames < due {
                        if state.out.frames.blocking_send(frame.clone()).is_err() {
                            // The encoder is gone: its monitor reports why.
                            break;
                        }
                        stats.frames += 1;
                    }
                    if stats.frames < due {
                        video = None;
                    }
                }
            }
            if let Some(tx) = audio.as_ref() {
                let due = (elapsed.as_millis() / u128::from(CHUNK_MS)) as u64 + 1;
                while stats.chunks < due {
                    {
                        let view = lock(&view);
                        if audio_generation != Some(view.generation) {
                            audio_generation = Some(view.generation);
                            audio_entries = view.audio.clone();
                        }
                    }
                    let mut guards: Vec<_> = audio_entries.iter().map(|a| lock(&a.pcm)).collect();
                    let mixed = mix_chunk(guards.iter_mut().map(|g| &mut **g));
                    drop(guards);
                    if tx.blocking_send(Bytes::from(mixed)).is_err() {
                        break;
                    }
                    stats.chunks += 1;
                }
                if stats.chunks < due {
                    audio = None;
                }
            }
            if video.is_none() && audio.is_none() {
                break;
            }
            let next_frame = video.as_ref().map(|s| {
                let fps = u64::from(s.out.fps.max(1));
                start + Duration::from_nanos(stats.frames.saturating_mul(1_000_000_000) / fps)
            });
            let next_chunk =
                audio.as_ref().map(|_| start + Duration::from_millis(CHUNK_MS.saturating_mul(stats.chunks)));
            let wake = match (next_frame, next_chunk) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            match stop.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::composed::canvas::Picture;

    fn stream(n: u32) -> StreamId {
        StreamId::parse(&format!("str_CAM_AbCd_con_{n:08}")).unwrap_or_else(|_| panic!("stream id {n}"))
    }

    #[test]
    fn emits_one_frame_per_interval_and_one_chunk_per_20_ms() {
        let view = Arc::new(Mutex::new(StreamsView::default()));
        let slot = Arc::new(VideoSlot::default());
        let pcm = Arc::new(Mutex::new(PcmBuffer::default()));
        {
            let mut v = lock(&view);
            v.video.push(VideoEntry { stream: stream(1), screen: false, slot: slot.clone() });
            v.audio.push(AudioEntry { stream: stream(1), pcm: pcm.clone() });
            v.generation += 1;
        }
        let luma = 64 * 48;
        let mut data = vec![200u8; luma * 3 / 2];
        data[luma..].fill(128);
        slot.set(Some(Arc::new(Picture { w: 64, h: 48, data })));
        lock(&pcm).push(&vec![1000; 20 * 960 * 2 / 2]);
        let (vtx, mut vrx) = mpsc::channel(1000);
        let (atx, mut arx) = mpsc::channel(1000);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let compositor = Compositor {
            view,
            video: Some(VideoOut { frames: vtx, width: 64, height: 48, fps: 25, layout: RecordingLayout::BestFit }),
            audio: Some(atx),
            stop: stop_rx,
        };
        let thread = std::thread::spawn(move || compositor.run());
        std::thread::sleep(Duration::from_millis(500));
        drop(stop_tx);
        let stats = thread.join().unwrap_or_default();
        // 500 ms at 25 fps: 13 frames (one at 0), give or take scheduling; 26 chunks.
        assert!((12..=15).contains(&stats.frames), "{stats:?}");
        assert!((25..=28).contains(&stats.chunks), "{stats:?}");
        assert!(stats.drawn <= 2, "{stats:?}");
        let mut frames = Vec::new();
        while let Ok(f) = vrx.try_recv() {
            frames.push(f);
        }
        assert_eq!(frames.len() as u64, stats.frames);
        assert!(frames.iter().all(|f| f.len() == luma * 3 / 2));
        assert_eq!(frames.last().map(|f| f[luma / 2 + 32]), Some(200));
        let first = arx.try_recv().unwrap_or_default();
        assert_eq!(first.len(), 3840);
        assert_eq!(i16::from_le_bytes([first[0], first[1]]), 1000);
    }
}
