//! End-to-end tests of [`ComposedRecorder`]: real VP8 and Opus (made by FFmpeg from lavfi test
//! sources), packetized into RTP with rtc's payloaders, sent paced in real time through tap
//! channels, recorded, and the output checked with ffprobe/ffmpeg.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::id::{ConnectionId, RecordingId, SessionId, StreamId, TypeOfVideo};
use openvidu_core::model::RecordingLayout;
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media::io::ogg_reader::OggReader;
use rtc::rtp;
use rtc::rtp::codec::opus::OpusPayloader;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use tokio::sync::{broadcast, mpsc};

use super::pool::EncoderFormat;
use super::{ComposedRecorder, ComposerPool};
use crate::config::RecordingConfig;
use crate::keyframe::{KeyframeEvent, KeyframeRequests};
use crate::node::{MediaError, MediaEvent};
use crate::recording::tap::{RecordedCodec, StreamTap, TrackTap};
use crate::recording::{RecordedStream, RecordingKind, RecordingReport, RecordingSpec};

/// The input media: VP8 frames (15 fps) and Opus packets (20 ms), 4 s each.
struct Fixtures {
    _dir: tempfile::TempDir,
    vp8: Vec<Bytes>,
    opus: Vec<Bytes>,
}

fn ffmpeg_available() -> bool {
    std::process::Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success())
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let ivf = dir.path().join("in.ivf");
        let ogg = dir.path().join("in.ogg");
        let out = sh(
            "ffmpeg",
            &["-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "4", "-c:v", "libvpx"]
                .into_iter()
                .chain(["-deadline", "realtime", "-g", "15", "-b:v", "300k", ivf.to_str().expect("path")])
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = sh(
            "ffmpeg",
            &["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4", "-ac", "2"]
                .into_iter()
                .chain(["-c:a", "libopus", "-b:a", "32k", "-page_duration", "20000", ogg.to_str().expect("path")])
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let (mut reader, header) = IVFReader::new(std::fs::File::open(&ivf).expect("ivf")).expect("ivf header");
        assert_eq!((header.width, header.height), (320, 240));
        let mut vp8 = Vec::new();
        while let Ok((frame, _)) = reader.parse_next_frame() {
            vp8.push(frame.freeze());
        }
        let (mut reader, _) = OggReader::new(std::fs::File::open(&ogg).expect("ogg"), true).expect("ogg header");
        let mut opus = Vec::new();
        while let Ok((page, _)) = reader.parse_next_page() {
            if page.starts_with(b"OpusTags") {
                continue;
            }
            opus.push(page.freeze());
        }
        assert!(vp8.len() >= 59 && opus.len() >= 190, "{} {}", vp8.len(), opus.len());
        Fixtures { _dir: dir, vp8, opus }
    })
}

/// Makes the fixtures (once) off the runtime's threads, before a recording starts.
async fn load_fixtures() {
    tokio::task::spawn_blocking(fixtures).await.expect("fixtures");
}

/// A fake publisher: tap channels and what sends into them.
struct Publisher {
    info: RecordedStream,
    video: broadcast::Sender<rtp::Packet>,
    audio: broadcast::Sender<rtp::Packet>,
    keyframes: mpsc::UnboundedReceiver<KeyframeEvent>,
    keyframe_tx: KeyframeRequests,
}

impl Publisher {
    fn new(n: u32, screen: bool) -> Self {
        let connection = ConnectionId::parse(&format!("con_TEST{n:04}")).expect("connection");
        let stream = StreamId::parse(&format!("str_CAM_Ab{n:02}_con_TEST{n:04}")).expect("stream");
        let mut info = RecordedStream::new(stream, connection);
        if screen {
            info.type_of_video = Some(TypeOfVideo::Screen);
        }
        let (keyframe_tx, keyframes) = KeyframeRequests::channel();
        Self { info, video: broadcast::channel(1024).0, audio: broadcast::channel(1024).0, keyframes, keyframe_tx }
    }

    fn tap(&self) -> StreamTap {
        StreamTap {
            info: self.info.clone(),
            video: Some(TrackTap::new(RecordedCodec::Vp8, 90_000, self.video.clone(), Some(self.keyframe_tx.clone()))),
            audio: Some(TrackTap::new(RecordedCodec::Opus, 48_000, self.audio.clone(), None)),
        }
    }

    /// Sends `duration` of video and audio, paced in real time.
    fn send(&self, duration: Duration) -> tokio::task::JoinHandle<()> {
        let (video, audio) = (self.video.clone(), self.audio.clone());
        tokio::spawn(async move {
            let fx = fixtures();
            let start = tokio::time::Instant::now();
            let now = Instant::now();
            let mut vp = new_packetizer(
                now,
                1200,
                96,
                rand::random(),
                Box::new(Vp8Payloader::default()),
                Box::new(new_random_sequencer()),
                90_000,
            );
            let mut ap = new_packetizer(
                now,
                1200,
                111,
                rand::random(),
                Box::new(OpusPayloader),
                Box::new(new_random_sequencer()),
                48_000,
            );
            let (mut vi, mut ai) = (0usize, 0usize);
            loop {
                let vt = Duration::from_millis(vi as u64 * 1000 / 15);
                let at = Duration::from_millis(ai as u64 * 20);
                let next = vt.min(at);
                if next >= duration {
                    break;
                }
                tokio::time::sleep_until(start + next).await;
                if vt <= at {
                    let frame = &fx.vp8[vi % fx.vp8.len()];
                    for p in vp.packetize(Instant::now(), frame, 6000).expect("vp8 packetize") {
                        let _ = video.send(p);
                    }
                    vi += 1;
                } else {
                    let packet = &fx.opus[ai % fx.opus.len()];
                    for p in ap.packetize(Instant::now(), packet, 960).expect("opus packetize") {
                        let _ = audio.send(p);
                    }
                    ai += 1;
                }
            }
        })
    }
}

fn config(warm: &[(u32, u32, u32)]) -> RecordingConfig {
    RecordingConfig { warm_formats: warm.to_vec(), ..RecordingConfig::default() }
}

fn spec(folder: &Path, name: &str, layout: RecordingLayout, has_video: bool) -> RecordingSpec {
    let session = SessionId::parse("ses_Composed").expect("session");
    let id = RecordingId::parse(&format!("ses_Composed-{name}")).expect("id");
    let mut spec = RecordingSpec::new(
        session,
        id,
        name,
        folder.to_owned(),
        0,
        RecordingKind::Composed { layout, width: 640, height: 480, frame_rate: 15 },
    );
    spec.has_video = has_video;
    spec
}

fn ffprobe_json(file: &Path) -> serde_json::Value {
    let out =
        sh("ffprobe", &["-v", "error", "-show_streams", "-show_format", "-of", "json", file.to_str().expect("p")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Decodes the whole file: FFmpeg must report nothing.
fn assert_decodes_cleanly(file: &Path) {
    let out = sh("ffmpeg", &["-v", "error", "-i", file.to_str().expect("p"), "-f", "null", "-"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "ffmpeg -v error complains about {}", file.display());
}

/// One grey 64×48 frame of `file` at `at` seconds.
fn grey_frame(file: &Path, at: f64) -> Vec<u8> {
    let at = format!("{at:.2}");
    let out = sh(
        "ffmpeg",
        &["-v", "error", "-ss", &at, "-i", file.to_str().expect("p"), "-frames:v", "1", "-vf", "scale=64:48"]
            .into_iter()
            .chain(["-pix_fmt", "gray", "-f", "rawvideo", "-"])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 64 * 48);
    out.stdout
}

/// RMS of the audio of `file` between 1 s and 2 s (mono, 8 kHz).
fn audio_rms(file: &Path) -> f64 {
    let out = sh(
        "ffmpeg",
        &["-v", "error", "-ss", "1", "-t", "1", "-i", file.to_str().expect("p"), "-vn", "-ac", "1", "-ar", "8000"]
            .into_iter()
            .chain(["-f", "s16le", "-"])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<f64> = out.stdout.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect();
    assert!(!samples.is_empty());
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}

/// CPU seconds of this process (user + system) and of its reaped children, from /proc.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> =
        stat.rsplit(')').next().unwrap_or_default().split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (field(14) + field(15), field(16) + field(17))
}

/// Mean luma of rows × cols of a 64×48 grey frame.
fn mean_luma(frame: &[u8], rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> f64 {
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in rows {
        for x in cols.clone() {
            sum += f64::from(frame[y * 64 + x]);
            n += 1.0;
        }
    }
    sum / n
}

/// Records `publishers` for `duration` of sending; returns the report, the wall time from
/// `start()` to `stop()`, the time to the first output and the recorder's failure events.
async fn record(
    pool: &ComposerPool,
    spec: RecordingSpec,
    publishers: &mut [Publisher],
    duration: Duration,
) -> (Result<RecordingReport, MediaError>, Duration, Option<Duration>, Vec<MediaEvent>) {
    load_fixtures().await;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let has_video = spec.has_video;
    let t0 = Instant::now();
    let recorder = ComposedRecorder::start(spec, pool, events_tx).await.expect("start");
    for p in publishers.iter() {
        recorder.add_stream(p.tap()).expect("add_stream");
    }
    let senders: Vec<_> = publishers.iter().map(|p| p.send(duration)).collect();
    for s in senders {
        s.await.expect("sender");
    }
    let wall = t0.elapsed();
    let first = recorder.first_output();
    let report = recorder.stop().await;
    let stop_time = t0.elapsed() - wall;
    println!("recorded {wall:?}, stop took {stop_time:?}");
    for p in publishers.iter_mut() {
        let mut requests = 0;
        while p.keyframes.try_recv().is_ok() {
            requests += 1;
        }
        assert!(requests >= 1 || !has_video, "a keyframe is requested when a video stream is added");
    }
    let mut events = Vec::new();
    while let Ok(e) = events_rx.try_recv() {
        events.push(e);
    }
    (report, wall, first, events)
}

fn check_mp4(folder: &Path, name: &str, id: &str, report: &RecordingReport, wall: Duration) -> PathBuf {
    let mp4 = folder.join(format!("{name}.mp4"));
    assert_eq!(report.files, vec![format!("{name}.mp4"), format!("{id}.jpg")]);
    assert_eq!(report.size, std::fs::metadata(&mp4).expect("mp4").len());
    assert!(report.has_audio && report.has_video);
    let probe = ffprobe_json(&mp4);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("audio stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(audio["codec_name"], "aac");
    let duration: f64 = probe["format"]["duration"].as_str().expect("duration").parse().expect("f64");
    let wall = wall.as_secs_f64();
    println!("{name}: duration {duration:.3} s for {wall:.3} s of wall time, {} bytes", report.size);
    assert!((duration - wall).abs() <= wall * 0.10, "duration {duration} vs wall {wall}");
    assert!((report.duration - duration).abs() < 0.01);
    assert_decodes_cleanly(&mp4);
    let jpg = folder.join(format!("{id}.jpg"));
    let thumb = ffprobe_json(&jpg);
    assert_eq!(thumb["streams"][0]["width"].as_u64(), Some(480));
    // Only the final files are left.
    let mut left: Vec<String> =
        std::fs::read_dir(folder).expect("dir").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    left.sort();
    let mut expected = vec![format!("{id}.jpg"), format!("{name}.mp4")];
    expected.sort();
    assert_eq!(left, expected);
    mp4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_best_fit_mp4() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: skipped");
        return;
    }
    let pool = ComposerPool::new(&config(&[(640, 480, 15)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), "one", RecordingLayout::BestFit, true);
    let mut publishers = [Publisher::new(1, false)];
    let (report, wall, first, events) = record(&pool, spec, &mut publishers, Duration::from_secs(3)).await;
    let report = report.expect("stop");
    assert!(events.is_empty(), "{events:?}");
    println!("one stream: first output after {first:?}");
    let mp4 = check_mp4(dir.path(), "one", "ses_Composed-one", &report, wall);
    // The 320x240 stream fills the 640x480 canvas (same aspect): bright testsrc everywhere.
    let frame = grey_frame(&mp4, 2.0);
    let mean = frame.iter().map(|&v| f64::from(v)).sum::<f64>() / frame.len() as f64;
    assert!(mean > 60.0, "mean luma {mean}");
    let rms = audio_rms(&mp4);
    println!("one stream: audio rms {rms:.0}");
    assert!(rms > 500.0, "audio rms {rms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_best_fit_mp4() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: skipped");
        return;
    }
    let pool = ComposerPool::new(&config(&[(640, 480, 15)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), "two", RecordingLayout::BestFit, true);
    let mut publishers = [Publisher::new(1, false), Publisher::new(2, false)];
    load_fixtures().await;
    let cpu_before = cpu_times();
    let (report, wall, _, events) = record(&pool, spec, &mut publishers, Duration::from_secs(3)).await;
    let cpu_after = cpu_times();
    println!(
        "two streams: CPU during the recording (whole test process, other tests included): own {:.2} s, \
         reaped children {:.2} s, for {:.2} s of wall time",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        wall.as_secs_f64()
    );
    let report = report.expect("stop");
    assert!(events.is_empty(), "{events:?}");
    let mp4 = check_mp4(dir.path(), "two", "ses_Composed-two", &report, wall);
    // Two 320x480 cells side by side, each a 320x240 picture centred: black bands above and
    // below (rows 0..12 and 36..48 of the 64x48 grey frame), content in the middle of both.
    let frame = grey_frame(&mp4, 2.0);
    let mean = |rows, cols| mean_luma(&frame, rows, cols);
    let (top, bottom) = (mean(0..10, 0..64), mean(38..48, 0..64));
    let (left, right) = (mean(14..34, 2..30), mean(14..34, 34..62));
    println!("two streams: luma top {top:.0} bottom {bottom:.0} left {left:.0} right {right:.0}");
    assert!(top < 25.0 && bottom < 25.0);
    assert!(left > 60.0 && right > 60.0);
    let rms = audio_rms(&mp4);
    println!("two streams: audio rms {rms:.0}");
    assert!(rms > 500.0, "audio rms {rms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_come_and_go() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: skipped");
        return;
    }
    let pool = ComposerPool::new(&config(&[]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path(), "churn", RecordingLayout::BestFit, true);
    spec.has_audio = false;
    load_fixtures().await;
    let (events_tx, _events_rx) = mpsc::unbounded_channel();
    let recorder = ComposedRecorder::start(spec, &pool, events_tx).await.expect("start");
    let (a, b) = (Publisher::new(1, false), Publisher::new(2, false));
    recorder.add_stream(a.tap()).expect("add a");
    let send_a = a.send(Duration::from_millis(3000));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    recorder.add_stream(b.tap()).expect("add b");
    let send_b = b.send(Duration::from_millis(2000));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    recorder.remove_stream(&a.info.stream).await;
    send_a.await.expect("a");
    send_b.await.expect("b");
    let report = recorder.stop().await.expect("stop");
    assert!(report.has_video && !report.has_audio);
    assert_eq!(report.files, vec!["churn.mp4".to_owned(), "ses_Composed-churn.jpg".to_owned()]);
    let mp4 = dir.path().join("churn.mp4");
    assert_decodes_cleanly(&mp4);
    // Alone: the whole canvas. Two: side by side with black bands. Alone again after removal.
    let bands = |at: f64| {
        let frame = grey_frame(&mp4, at);
        (mean_luma(&frame, 0..10, 0..64), mean_luma(&frame, 14..34, 0..64))
    };
    let (one, two, again) = (bands(0.7), bands(1.8), bands(2.7));
    println!("streams come and go: top band / middle luma: one {one:?}, two {two:?}, one again {again:?}");
    assert!(one.0 > 60.0 && one.1 > 60.0);
    assert!(two.0 < 25.0 && two.1 > 60.0);
    assert!(again.0 > 60.0 && again.1 > 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_webm() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: skipped");
        return;
    }
    let pool = ComposerPool::new(&config(&[]));
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), "audio", RecordingLayout::BestFit, false);
    let mut publishers = [Publisher::new(1, false)];
    let (report, wall, first, events) = record(&pool, spec, &mut publishers, Duration::from_secs(2)).await;
    let report = report.expect("stop");
    assert!(events.is_empty(), "{events:?}");
    println!("audio only: first output after {first:?}");
    assert_eq!(report.files, vec!["audio.webm".to_owned()]);
    assert!(report.has_audio && !report.has_video);
    let webm = dir.path().join("audio.webm");
    let probe = ffprobe_json(&webm);
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["codec_name"], "opus");
    assert!(probe["format"]["format_name"].as_str().is_some_and(|f| f.contains("webm")));
    let duration: f64 = probe["format"]["duration"].as_str().expect("duration").parse().expect("f64");
    println!("audio only: duration {duration:.3} s for {:.3} s of wall time", wall.as_secs_f64());
    assert!((duration - wall.as_secs_f64()).abs() <= wall.as_secs_f64() * 0.10);
    assert_decodes_cleanly(&webm);
    assert!(audio_rms(&webm) > 500.0);
    assert!(!dir.path().join("ses_Composed-audio.jpg").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_start_latency() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: skipped");
        return;
    }
    let pool = ComposerPool::new(&config(&[(640, 480, 15)]));
    let warm = EncoderFormat::Video { width: 640, height: 480, fps: 15 };
    assert_eq!(pool.idle(warm), 1);
    assert_eq!(pool.idle(EncoderFormat::Aac), 1);
    // Let the warm processes finish loading, as they would between node start and a recording.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    for (name, layout) in [("first", RecordingLayout::BestFit), ("later", RecordingLayout::PictureInPicture)] {
        let was_warm = pool.idle(warm) > 0;
        let (events_tx, _events_rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let recorder =
            ComposedRecorder::start(spec(dir.path(), name, layout, true), &pool, events_tx).await.expect("start");
        let started = t0.elapsed();
        let mut first = None;
        while t0.elapsed() < Duration::from_secs(5) {
            if let Some(f) = recorder.first_output() {
                first = Some(f);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = recorder.stop().await.expect("stop");
        assert!(report.has_video);
        println!(
            "warm start: {name} recording (warm encoder: {was_warm}): start() took {started:?}, first bytes after {first:?}"
        );
        results.push(first);
        // The pool replaces the process in the background.
        let t = Instant::now();
        while pool.idle(warm) == 0 && t.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.idle(warm), 1, "the pool refills");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A format that is not kept warm starts cold.
    let mut cold = spec(dir.path(), "cold", RecordingLayout::BestFit, true);
    cold.kind = RecordingKind::Composed { layout: RecordingLayout::BestFit, width: 320, height: 240, frame_rate: 15 };
    let (events_tx, _events_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let recorder = ComposedRecorder::start(cold, &pool, events_tx).await.expect("start");
    let mut first = None;
    while t0.elapsed() < Duration::from_secs(5) && first.is_none() {
        first = recorder.first_output();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("warm start: cold recording (format not kept warm): first bytes after {first:?}");
    recorder.stop().await.expect("stop");
    assert!(results.iter().all(Option::is_some), "{results:?}");
}

/// Writes an executable script standing in for ffmpeg.
fn fake_ffmpeg(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-ffmpeg");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoder_death_fails_the_recording_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&[(640, 480, 15)]);
    config.ffmpeg = fake_ffmpeg(dir.path(), "echo 'Conversion failed!' >&2; exit 3");
    let pool = ComposerPool::new(&config);
    let folder = dir.path().join("rec");
    std::fs::create_dir(&folder).expect("folder");
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let recorder = ComposedRecorder::start(spec(&folder, "dead", RecordingLayout::BestFit, true), &pool, events_tx)
        .await
        .expect("start");
    let event = tokio::time::timeout(Duration::from_secs(5), events_rx.recv()).await.expect("event in time");
    let Some(MediaEvent::RecordingFailed { recording, reason, .. }) = event else {
        panic!("expected RecordingFailed, got {event:?}");
    };
    assert_eq!(recording.as_str(), "ses_Composed-dead");
    assert!(reason.contains("encoder exited"), "{reason}");
    let t = Instant::now();
    let err = recorder.stop().await.expect_err("stop fails");
    assert!(t.elapsed() < Duration::from_secs(8), "stop took {:?}", t.elapsed());
    assert!(matches!(err, MediaError::Recording(_)), "{err:?}");
    // Again: same outcome, no second event.
    assert!(recorder.stop().await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events_rx.try_recv().is_err(), "RecordingFailed is sent once");
    // Temporary files are gone.
    assert_eq!(std::fs::read_dir(&folder).expect("dir").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_when_the_encoder_hangs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&[]);
    config.ffmpeg = fake_ffmpeg(dir.path(), "exec sleep 60");
    let pool = ComposerPool::new(&config);
    let folder = dir.path().join("rec");
    std::fs::create_dir(&folder).expect("folder");
    let (events_tx, _events_rx) = mpsc::unbounded_channel();
    let recorder = ComposedRecorder::start(spec(&folder, "hung", RecordingLayout::BestFit, true), &pool, events_tx)
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let result = recorder.stop().await;
    println!("hung encoder: stop returned {result:?} after {:?}", t.elapsed());
    assert!(result.is_err());
    assert!(t.elapsed() < Duration::from_secs(15), "stop took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_bad_specs() {
    let pool = ComposerPool::new(&config(&[]));
    let dir = tempfile::tempdir().expect("tempdir");
    let (events_tx, _rx) = mpsc::unbounded_channel();
    let mut nothing = spec(dir.path(), "nothing", RecordingLayout::BestFit, false);
    nothing.has_audio = false;
    assert!(ComposedRecorder::start(nothing, &pool, events_tx.clone()).await.is_err());
    let mut odd = spec(dir.path(), "odd", RecordingLayout::BestFit, true);
    odd.kind = RecordingKind::Composed { layout: RecordingLayout::BestFit, width: 641, height: 480, frame_rate: 15 };
    assert!(ComposedRecorder::start(odd, &pool, events_tx.clone()).await.is_err());
    let custom = spec(dir.path(), "custom", RecordingLayout::Custom, true);
    assert!(matches!(ComposedRecorder::start(custom, &pool, events_tx.clone()).await, Err(MediaError::Unsupported(_))));
    let missing = spec(&dir.path().join("missing"), "missing", RecordingLayout::BestFit, true);
    assert!(ComposedRecorder::start(missing, &pool, events_tx).await.is_err());
}
