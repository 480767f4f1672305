//! The encoders' plumbing and the final files.
//!
//! An encoder is an FFmpeg process (usually taken warm from the [`ComposerPool`](super::ComposerPool))
//! with three tasks around it: a writer feeding it what the compositor produces, a copier moving
//! its stdout into a hidden temporary file of the recording folder (so Rust sees a full disk or
//! a removed folder at once), and a monitor reporting an unexpected exit. At stop the temporary
//! files are remuxed (no re-encoding) into `<name>.mp4` (`+faststart`) or `<name>.webm`, the
//! thumbnail is cut from the middle, and ffprobe measures the result.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Shared;
use super::ffmpeg::{self, LogIds};
use crate::endpoint::lock;
use crate::node::MediaError;

/// How long each step of stopping an encoder may take before it is killed.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running encoder process and its tasks.
pub(crate) struct Encoder {
    /// "video" or "audio", for messages.
    pub(crate) name: &'static str,
    /// Its output so far.
    pub(crate) temp: PathBuf,
    writer: JoinHandle<()>,
    monitor: JoinHandle<Option<ExitStatus>>,
    /// Kills the process when sent to or dropped.
    kill: Option<oneshot::Sender<()>>,
    copier: JoinHandle<Result<u64, String>>,
}

impl Encoder {
    /// Wires `child` up: `input` feeds its stdin, its stdout goes to `temp` (created now).
    /// `primary`: its first output bytes mark the recording's first output.
    pub(crate) fn start(
        mut child: Child,
        name: &'static str,
        temp: PathBuf,
        mut input: mpsc::Receiver<Bytes>,
        shared: Arc<Shared>,
        primary: bool,
    ) -> Result<Self, MediaError> {
        let file = std::fs::File::create(&temp)
            .map_err(|e| MediaError::Recording(format!("cannot create {}: {e}", temp.display())))?;
        let mut file = tokio::fs::File::from_std(file);
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(MediaError::Recording(format!("the {name} encoder has no pipes")));
        };
        let process = if name == "video" { "video encoder" } else { "audio encoder" };
        let (stderr_task, last_line) = ffmpeg::forward_stderr(stderr, shared.ids.clone(), process, true);

        let writer = tokio::spawn(async move {
            while let Some(chunk) = input.recv().await {
                if stdin.write_all(&chunk).await.is_err() {
                    // The encoder is gone; its monitor tells why. Dropping `input` makes the
                    // compositor stop feeding it.
                    return;
                }
            }
            // Dropping stdin: end of input, the encoder flushes and exits.
        });

        let copy_shared = shared.clone();
        let copy_temp = temp.clone();
        let copier = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            let mut error: Option<String> = None;
            loop {
                let n = match stdout.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        error.get_or_insert(format!("cannot read the {name} encoder's output: {e}"));
                        break;
                    }
                };
                if error.is_some() {
                    // Keep draining so the encoder never blocks; the recording has failed.
                    continue;
                }
                match file.write_all(&buf[..n]).await {
                    Ok(()) => {
                        if total == 0 && primary {
                            copy_shared.mark_first_output();
                        }
                        total += n as u64;
                    }
                    Err(e) => {
                        let reason = format!("cannot write {}: {e}", copy_temp.display());
                        copy_shared.fail(reason.clone());
                        error = Some(reason);
                    }
                }
            }
            if error.is_none()
                && let Err(e) = file.flush().await
            {
                let reason = format!("cannot write {}: {e}", copy_temp.display());
                copy_shared.fail(reason.clone());
                error = Some(reason);
            }
            error.map_or(Ok(total), Err)
        });

        let (kill, kill_rx) = oneshot::channel::<()>();
        let monitor = tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.ok(),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    None
                }
            };
            if !shared.is_stopping() {
                // Let stderr deliver the last words.
                let _ = tokio::time::timeout(Duration::from_millis(500), stderr_task).await;
                let last = lock(&last_line).clone();
                let status = status.map_or_else(|| "killed".to_owned(), |s| s.to_string());
                shared.fail(format!(
                    "the {name} encoder exited ({status}){}{last}",
                    if last.is_empty() { "" } else { ": " }
                ));
            }
            status
        });

        Ok(Self { name, temp, writer, monitor, kill: Some(kill), copier })
    }

    /// Waits for the encoder to drain its input (closed by the compositor) and exit, killing
    /// it when a step takes longer than [`STEP_TIMEOUT`]; returns the bytes written.
    pub(crate) async fn finish(mut self, ids: &LogIds) -> Result<u64, String> {
        if tokio::time::timeout(STEP_TIMEOUT, &mut self.writer).await.is_err() {
            tracing::warn!(session = %ids.session, recording_id = %ids.recording, encoder = self.name,
                "the encoder does not take its input; killing it");
            self.writer.abort();
        }
        match tokio::time::timeout(STEP_TIMEOUT, &mut self.monitor).await {
            Ok(Ok(Some(status))) if !status.success() => {
                tracing::warn!(session = %ids.session, recording_id = %ids.recording, encoder = self.name,
                    %status, "the encoder did not exit cleanly");
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(session = %ids.session, recording_id = %ids.recording, encoder = self.name,
                    "the encoder does not exit; killing it");
                if let Some(kill) = self.kill.take() {
                    let _ = kill.send(());
                }
                let _ = tokio::time::timeout(STEP_TIMEOUT, &mut self.monitor).await;
            }
        }
        match tokio::time::timeout(STEP_TIMEOUT, &mut self.copier).await {
            Ok(Ok(Ok(0))) => Err(format!("the {} encoder produced nothing", self.name)),
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the {} output copier failed: {e}", self.name)),
            Err(_) => {
                self.copier.abort();
                Err(format!("the {} encoder's output did not end", self.name))
            }
        }
    }

    /// Kills the process now (a stuck compositor).
    pub(crate) fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// What ffprobe says about a file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Probe {
    /// Duration in seconds.
    pub(crate) duration: f64,
    /// It has an audio stream.
    pub(crate) has_audio: bool,
    /// It has a video stream.
    pub(crate) has_video: bool,
}

/// Parses `ffprobe -show_entries format=duration:stream=codec_type -of json`.
pub(crate) fn parse_probe(json: &[u8]) -> Option<Probe> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let duration = match value.get("format")?.get("duration")? {
        serde_json::Value::String(s) => s.parse().ok()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    let types: Vec<&str> = value
        .get("streams")
        .and_then(|s| s.as_array())
        .map(|streams| streams.iter().filter_map(|s| s.get("codec_type")?.as_str()).collect())
        .unwrap_or_default();
    Some(Probe { duration, has_audio: types.contains(&"audio"), has_video: types.contains(&"video") })
}

/// Measures `file` with ffprobe.
pub(crate) async fn probe(ffprobe: &Path, file: &Path, ids: &LogIds) -> Result<Probe, String> {
    let args: Vec<String> = ["-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([file.display().to_string()])
        .collect();
    let out = ffmpeg::run(ffprobe, &args, Duration::from_secs(30), ids, "ffprobe").await?;
    parse_probe(&out.stdout).ok_or_else(|| format!("ffprobe cannot measure {}", file.display()))
}

/// Remuxes the temporary files into the final one: `video` (H.264 in MPEG-TS) and/or `audio`
/// (AAC in ADTS, or Opus in Ogg for `webm`) without re-encoding.
pub(crate) async fn mux(
    ffmpeg_path: &Path,
    video: Option<&Path>,
    audio: Option<&Path>,
    out: &Path,
    ids: &LogIds,
) -> Result<(), String> {
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"].map(String::from).to_vec();
    let mut inputs = 0u64;
    let mut maps = Vec::new();
    for (path, stream) in [(video, "v"), (audio, "a")] {
        if let Some(path) = path {
            args.extend(["-i".to_owned(), path.display().to_string()]);
            maps.extend(["-map".to_owned(), format!("{inputs}:{stream}:0")]);
            inputs += 1;
        }
    }
    args.extend(maps);
    args.extend(["-c", "copy"].map(String::from));
    if video.is_some() {
        args.extend(["-movflags", "+faststart", "-f", "mp4"].map(String::from));
    } else {
        args.extend(["-f", "webm"].map(String::from));
    }
    args.push(out.display().to_string());
    // Remuxing runs at disk speed: allow a minute plus a second per 20 MB.
    let size: u64 =
        [video, audio].into_iter().flatten().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let limit = Duration::from_secs(60 + size / 20_000_000);
    ffmpeg::run(ffmpeg_path, &args, limit, ids, "muxer").await.map(|_| ())
}

/// Cuts the thumbnail: the frame at `at` seconds, 480 px wide, as JPEG.
pub(crate) async fn thumbnail(
    ffmpeg_path: &Path,
    video: &Path,
    at: f64,
    out: &Path,
    ids: &LogIds,
) -> Result<(), String> {
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-ss",
        &format!("{at:.3}"),
        "-i",
        &video.display().to_string(),
        "-frames:v",
        "1",
        "-vf",
        "scale=480:-2",
        "-q:v",
        "3",
        "-f",
        "image2",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    ffmpeg::run(ffmpeg_path, &args, Duration::from_secs(30), ids, "thumbnail").await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_parsed() {
        let json = br#"{"programs":[],"streams":[{"codec_type":"video"},{"codec_type":"audio"}],"format":{"duration":"3.016000"}}"#;
        assert_eq!(parse_probe(json), Some(Probe { duration: 3.016, has_audio: true, has_video: true }));
        let audio = br#"{"streams":[{"codec_type":"audio"}],"format":{"duration":"1.5"}}"#;
        assert_eq!(parse_probe(audio), Some(Probe { duration: 1.5, has_audio: true, has_video: false }));
        assert_eq!(parse_probe(b"garbage"), None);
        assert_eq!(parse_probe(br#"{"format":{}}"#), None);
    }
}
