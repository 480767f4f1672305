//! A participant bot: joins a session with a token, publishes VP8 video (from an IVF file, or
//! synthetic) and Opus audio (from an Ogg Opus file, or synthetic), subscribes to everyone, and
//! after a while prints what it received.
//!
//! Run with `cargo run --example bot --features participant -- <token> [--ivf FILE] [--ogg FILE]
//! [--seconds N]`. `scripts/test-media` makes suitable files (`target/test-media/video.ivf`,
//! `target/test-media/audio.ogg`). With `--ogg` the media is real (decodable, e.g. by recordings);
//! `--ogg` without `--ivf` publishes audio only; `--ivf` alone sends synthetic audio.
//!
//! Expect:
//!
//! ```text
//! joined con_Xyz… (session ses_…)
//! published str_CAM_…
//! {"stream":"str_CAM_…","publisher":"con_…","connected":true,"videoPackets":412,"videoFrames":140,"videoKeyframes":3,"audioPackets":480}
//! left
//! ```
//! The token's server may use a self-signed certificate: the bot accepts it (development tool).

use std::time::Duration;

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let token = args.first().ok_or("usage: bot <token> [--ivf FILE] [--ogg FILE] [--seconds N]")?.clone();
    let flag = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let seconds: u64 = flag("--seconds").map(|s| s.parse()).transpose()?.unwrap_or(10);
    let publish = match (flag("--ivf"), flag("--ogg")) {
        (ivf, Some(ogg)) => {
            let video = ivf.is_some();
            PublishOptions::new(MediaSource::Files { video: ivf.map(Into::into), audio: Some(ogg.into()) })
                .with_video(video)
        }
        (Some(ivf), None) => PublishOptions::new(MediaSource::IvfFile(ivf.into())),
        (None, None) => PublishOptions::new(MediaSource::Synthetic { fps: 15, packet_size: 800 }),
    };

    let options = JoinOptions::new()
        .with_client_data("rust-bot")
        .with_platform("openvidu-rs bot")
        .with_accept_invalid_certs(true);
    let bot = Participant::join(&token, options).await?;
    println!("joined {} (session {})", bot.connection_id(), bot.session_id());
    let stream = bot.publish(publish).await?;
    println!("published {stream}");
    bot.subscribe_all().await?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for s in bot.stats() {
        println!(
            "{}",
            serde_json::json!({
                "stream": s.stream_id, "publisher": s.publisher, "connected": s.connected,
                "videoPackets": s.video.packets, "videoFrames": s.video.frames, "videoKeyframes": s.video.keyframes,
                "audioPackets": s.audio.packets,
            })
        );
    }
    bot.leave().await?;
    println!("left");
    Ok(())
}
