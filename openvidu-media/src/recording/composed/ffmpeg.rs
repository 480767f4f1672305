//! The FFmpeg (and ffprobe) command lines and the helpers that run them with bounded waits.
//!
//! Every process is spawned with `kill_on_drop`, piped stdio and `-loglevel error`; its stderr
//! is forwarded to `tracing` with the recording's ids. Live processes (decoders, encoders) use
//! `-nostdin` (no interactive keys: stdin is their media input) and `-flush_packets 1`, so
//! nothing waits in FFmpeg's 32 KiB output buffer.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openvidu_core::id::{RecordingId, SessionId, StreamId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use super::super::tap::RecordedCodec;
use crate::endpoint::lock;

/// The ids every log line of a recording carries.
#[derive(Clone, Debug)]
pub(crate) struct LogIds {
    /// The session.
    pub(crate) session: SessionId,
    /// The recording.
    pub(crate) recording: RecordingId,
    /// The stream, for a decoder.
    pub(crate) stream: Option<StreamId>,
}

impl LogIds {
    /// The same ids for one stream's processes.
    pub(crate) fn with_stream(&self, stream: &StreamId) -> Self {
        Self { stream: Some(stream.clone()), ..self.clone() }
    }
}

/// Logs a line at warn (encoders, finishing) or debug (decoders: a damaged stream makes them
/// chatty) level, with the ids as fields.
pub(crate) fn log_line(ids: &LogIds, process: &str, warn: bool, line: &str) {
    let stream = ids.stream.as_ref().map(ToString::to_string).unwrap_or_default();
    if warn {
        tracing::warn!(session = %ids.session, recording_id = %ids.recording, stream = %stream, process, "ffmpeg: {line}");
    } else {
        tracing::debug!(session = %ids.session, recording_id = %ids.recording, stream = %stream, process, "ffmpeg: {line}");
    }
}

/// A process with piped stdio that is killed when its handle drops.
pub(crate) fn spawn(program: &Path, args: &[String]) -> std::io::Result<Child> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// Forwards `stderr` to the log line by line and keeps the last line (for failure reasons).
pub(crate) fn forward_stderr(
    stderr: ChildStderr,
    ids: LogIds,
    process: &'static str,
    warn: bool,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<String>>) {
    let last = Arc::new(Mutex::new(String::new()));
    let keep = last.clone();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim().to_owned();
            if line.is_empty() {
                continue;
            }
            log_line(&ids, process, warn, &line);
            *lock(&keep) = line;
        }
    });
    (task, last)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// The encoder of the composed video: raw yuv420p frames at a constant rate on stdin (the
/// compositor writes exactly one per frame interval of wall time, so frame count = duration),
/// H.264 in MPEG-TS on stdout. MPEG-TS is written packet by packet (no clusters held in memory
/// as Matroska does) and stays readable up to the last byte if the process dies.
pub(crate) fn video_encoder_args(width: u32, height: u32, fps: u32) -> Vec<String> {
    let size = format!("{width}x{height}");
    let (rate, gop) = (fps.to_string(), (fps * 2).to_string());
    let mut args = strings(&["-hide_banner", "-nostdin", "-loglevel", "error"]);
    args.extend(strings(&["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size, "-r", &rate, "-i", "pipe:0"]));
    args.extend(strings(&[
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &gop,
        "-threads",
        "2",
        "-flush_packets",
        "1",
        "-f",
        "mpegts",
        "pipe:1",
    ]));
    args
}

/// The encoder of the mixed audio of an MP4: s16le 48 kHz stereo on stdin, AAC in ADTS on
/// stdout (written frame by frame).
pub(crate) fn aac_encoder_args() -> Vec<String> {
    let mut args = pcm_input_args();
    args.extend(strings(&["-c:a", "aac", "-b:a", "128k", "-flush_packets", "1", "-f", "adts", "pipe:1"]));
    args
}

/// The encoder of an audio-only recording: Opus in Ogg on stdout, one 20 ms page at a time
/// (remuxed to WebM at stop).
pub(crate) fn opus_encoder_args() -> Vec<String> {
    let mut args = pcm_input_args();
    args.extend(strings(&[
        "-c:a",
        "libopus",
        "-b:a",
        "64k",
        "-page_duration",
        "20000",
        "-flush_packets",
        "1",
        "-f",
        "ogg",
        "pipe:1",
    ]));
    args
}

fn pcm_input_args() -> Vec<String> {
    // Without the small probe, FFmpeg reads a second of PCM before encoding anything.
    let mut args = strings(&["-hide_banner", "-nostdin", "-loglevel", "error", "-probesize", "32"]);
    args.extend(strings(&["-analyzeduration", "0", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"]));
    args
}

/// Options that make a decoder start on the first bytes (`-probesize 32 -analyzeduration 0`:
/// the format is given, the stream parameters come from the first packet) and output every frame
/// as soon as it is decoded. Not `-fflags nobuffer`: it discards the packets read while probing,
/// which would be the stream's first keyframe, and nothing would decode until the next one.
const LOW_LATENCY_INPUT: [&str; 8] =
    ["-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0", "-threads", "1"];

/// A video decoder: IVF (VP8/VP9) or Annex-B (H264) on stdin; on stdout yuv420p pictures of
/// exactly `w`×`h` (scaled with the aspect kept and padded should the input size change
/// unannounced), passed through as they are decoded (`-fps_mode passthrough`: no frame is
/// duplicated or held to reach a frame rate).
pub(crate) fn video_decoder_args(codec: RecordedCodec, w: u32, h: u32) -> Vec<String> {
    let format = if codec == RecordedCodec::H264 { "h264" } else { "ivf" };
    let filter = format!(
        "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2:flags=fast_bilinear,pad={w}:{h}:-1:-1"
    );
    let mut args = strings(&["-hide_banner", "-nostdin", "-loglevel", "error"]);
    args.extend(strings(&LOW_LATENCY_INPUT));
    args.extend(strings(&["-f", format, "-i", "pipe:0", "-an", "-filter_threads", "1", "-vf", &filter]));
    args.extend(strings(&["-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-flush_packets", "1"]));
    args.extend(strings(&["-f", "rawvideo", "pipe:1"]));
    args
}

/// An audio decoder: Ogg/Opus on stdin, s16le 48 kHz stereo on stdout.
pub(crate) fn audio_decoder_args() -> Vec<String> {
    let mut args = strings(&["-hide_banner", "-nostdin", "-loglevel", "error"]);
    args.extend(strings(&LOW_LATENCY_INPUT));
    args.extend(strings(&["-f", "ogg", "-i", "pipe:0", "-vn", "-flush_packets", "1"]));
    args.extend(strings(&["-f", "s16le", "-ar", "48000", "-ac", "2", "pipe:1"]));
    args
}

/// What a finished one-shot process printed.
pub(crate) struct Finished {
    /// Standard output.
    pub(crate) stdout: Vec<u8>,
}

/// Runs a one-shot process (mux, thumbnail, probe) to completion within `limit`; kills it
/// past that. Fails with a reason that includes its last stderr line.
pub(crate) async fn run(
    program: &Path,
    args: &[String],
    limit: Duration,
    ids: &LogIds,
    process: &'static str,
) -> Result<Finished, String> {
    let mut child = spawn(program, args).map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    drop(child.stdin.take());
    let mut stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (logger, last) = match stderr {
        Some(stderr) => {
            let (task, last) = forward_stderr(stderr, ids.clone(), process, true);
            (Some(task), last)
        }
        None => (None, Arc::new(Mutex::new(String::new()))),
    };
    let work = async {
        let mut out = Vec::new();
        if let Some(stdout) = stdout.as_mut() {
            let _ = stdout.read_to_end(&mut out).await;
        }
        (child.wait().await, out)
    };
    let result = tokio::time::timeout(limit, work).await;
    let outcome = match result {
        Ok((Ok(status), out)) if status.success() => Ok(Finished { stdout: out }),
        Ok((Ok(status), _)) => Err(format!("{process} failed ({status})")),
        Ok((Err(e), _)) => Err(format!("{process} failed: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("{process} did not finish within {} s", limit.as_secs()))
        }
    };
    if let Some(logger) = logger {
        let _ = tokio::time::timeout(Duration::from_secs(1), logger).await;
    }
    outcome.map_err(|reason| {
        let last = lock(&last).clone();
        if last.is_empty() { reason } else { format!("{reason}: {last}") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let enc = video_encoder_args(640, 480, 15).join(" ");
        assert!(enc.contains("-f rawvideo -pix_fmt yuv420p -s 640x480 -r 15 -i pipe:0"), "{enc}");
        assert!(enc.contains("-c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30"), "{enc}");
        let dec = video_decoder_args(RecordedCodec::Vp8, 320, 240).join(" ");
        assert!(dec.contains("-threads 1 -f ivf -i pipe:0"), "{dec}");
        assert!(dec.contains("pad=320:240:-1:-1"), "{dec}");
        assert!(video_decoder_args(RecordedCodec::H264, 2, 2).join(" ").contains("-f h264 -i pipe:0"));
        assert!(audio_decoder_args().join(" ").contains("-threads 1 -f ogg -i pipe:0"));
        assert!(aac_encoder_args().join(" ").ends_with("-f adts pipe:1"));
        assert!(opus_encoder_args().join(" ").contains("libopus"));
    }
}
