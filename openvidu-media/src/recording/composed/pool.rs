//! [`ComposerPool`]: encoder processes started ahead of time (warm start).
//!
//! An FFmpeg encoder reads its input from stdin and writes its output to stdout, so it can be
//! started before anyone knows which recording it will serve: it loads its libraries, opens
//! `pipe:0` and blocks reading it. A recording of a kept format takes one and the pool starts a
//! replacement in the background; other formats are started on demand. Every process is
//! spawned with `kill_on_drop`, so dropping the pool (its last clone) kills the idle ones.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use tokio::process::Child;

use super::ffmpeg;
use crate::config::RecordingConfig;
use crate::endpoint::lock;
use crate::node::MediaError;

/// What an encoder process produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum EncoderFormat {
    /// H.264 video of this size and frame rate.
    Video {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Frames per second.
        fps: u32,
    },
    /// AAC audio (the MP4's).
    Aac,
    /// Opus audio (audio-only recordings).
    Opus,
}

impl EncoderFormat {
    /// The FFmpeg arguments.
    fn args(self) -> Vec<String> {
        match self {
            Self::Video { width, height, fps } => ffmpeg::video_encoder_args(width, height, fps),
            Self::Aac => ffmpeg::aac_encoder_args(),
            Self::Opus => ffmpeg::opus_encoder_args(),
        }
    }
}

/// What the composer keeps ready from the node's start (warm start): idle encoder processes.
/// Cheap to clone; the processes are killed when the last clone drops.
#[derive(Clone)]
pub struct ComposerPool {
    inner: Arc<PoolInner>,
}

/// The idle processes of one kept format.
#[derive(Default)]
struct Idle {
    children: Vec<Child>,
    /// Replacements being started.
    pending: usize,
}

struct PoolInner {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    /// Idle processes per kept format.
    idle: Mutex<HashMap<EncoderFormat, Idle>>,
    /// Processes kept per format.
    per_format: usize,
}

impl fmt::Debug for ComposerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle: Vec<(EncoderFormat, usize)> =
            lock(&self.inner.idle).iter().map(|(k, v)| (*k, v.children.len())).collect();
        f.debug_struct("ComposerPool")
            .field("ffmpeg", &self.inner.ffmpeg)
            .field("per_format", &self.inner.per_format)
            .field("idle", &idle)
            .finish()
    }
}

impl ComposerPool {
    /// Prepares the composer: starts `config.warm_encoders` idle encoders for each of
    /// `config.warm_formats` (and as many AAC encoders, which every MP4 with audio uses). Must be
    /// called inside a tokio runtime. A missing `ffmpeg` is only logged: COMPOSED recordings
    /// then fail at start.
    pub fn new(config: &RecordingConfig) -> Self {
        let mut formats: Vec<EncoderFormat> = config
            .warm_formats
            .iter()
            .filter(|(w, h, fps)| valid_format(*w, *h, *fps))
            .map(|&(width, height, fps)| EncoderFormat::Video { width, height, fps })
            .collect();
        if !formats.is_empty() {
            formats.push(EncoderFormat::Aac);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::warn!("ComposerPool created outside a tokio runtime: no warm COMPOSED encoders");
            formats.clear();
        }
        let per_format = if formats.is_empty() { 0 } else { config.warm_encoders };
        let inner = Arc::new(PoolInner {
            ffmpeg: config.ffmpeg.clone(),
            ffprobe: config.ffprobe.clone(),
            idle: Mutex::default(),
            per_format,
        });
        let mut started = 0;
        for format in formats {
            let mut children = Vec::with_capacity(per_format);
            for _ in 0..per_format {
                match ffmpeg::spawn(&inner.ffmpeg, &format.args()) {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        tracing::warn!(ffmpeg = %inner.ffmpeg.display(), error = %e,
                            "cannot start the warm COMPOSED encoders; COMPOSED recording needs ffmpeg");
                        break;
                    }
                }
            }
            started += children.len();
            lock(&inner.idle).insert(format, Idle { children, pending: 0 });
        }
        if started > 0 {
            tracing::debug!(encoders = started, "warm COMPOSED encoders started");
        }
        Self { inner }
    }

    /// The `ffmpeg` program.
    pub(crate) fn ffmpeg(&self) -> &std::path::Path {
        &self.inner.ffmpeg
    }

    /// The `ffprobe` program.
    pub(crate) fn ffprobe(&self) -> &std::path::Path {
        &self.inner.ffprobe
    }

    /// How many idle processes of `format` are ready.
    #[cfg(test)]
    pub(crate) fn idle(&self, format: EncoderFormat) -> usize {
        lock(&self.inner.idle).get(&format).map_or(0, |idle| idle.children.len())
    }

    /// An encoder process for `format`: an idle one (then replaced in the background) or a
    /// new one. The flag tells whether it was warm.
    pub(crate) fn take(&self, format: EncoderFormat) -> Result<(Child, bool), MediaError> {
        let (warm, refills) = {
            let mut idle = lock(&self.inner.idle);
            match idle.get_mut(&format) {
                None => (None, 0),
                Some(slot) => {
                    let mut found = None;
                    while let Some(mut child) = slot.children.pop() {
                        // Skip processes that died while idle.
                        if matches!(child.try_wait(), Ok(None)) {
                            found = Some(child);
                            break;
                        }
                    }
                    let refills = self.inner.per_format.saturating_sub(slot.children.len() + slot.pending);
                    slot.pending += refills;
                    (found, refills)
                }
            }
        };
        for _ in 0..refills {
            refill(Arc::downgrade(&self.inner), format);
        }
        match warm {
            Some(child) => Ok((child, true)),
            None => ffmpeg::spawn(&self.inner.ffmpeg, &format.args())
                .map(|child| (child, false))
                .map_err(|e| MediaError::Recording(format!("cannot start {}: {e}", self.inner.ffmpeg.display()))),
        }
    }
}

/// Starts one replacement process of `format` in the background, unless the pool is gone.
fn refill(pool: Weak<PoolInner>, format: EncoderFormat) {
    tokio::spawn(async move {
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let spawned = ffmpeg::spawn(&inner.ffmpeg, &format.args());
        let mut idle = lock(&inner.idle);
        let slot = idle.entry(format).or_default();
        slot.pending = slot.pending.saturating_sub(1);
        match spawned {
            Ok(child) => slot.children.push(child),
            Err(e) => tracing::warn!(error = %e, "cannot restart a warm COMPOSED encoder"),
        }
    });
}

/// Whether a size and rate can be encoded: even sizes from 16 to 7680×4320, 1 to 120 fps.
pub(crate) fn valid_format(width: u32, height: u32, fps: u32) -> bool {
    (16..=7680).contains(&width)
        && (16..=4320).contains(&height)
        && width.is_multiple_of(2)
        && height.is_multiple_of(2)
        && (1..=120).contains(&fps)
}
