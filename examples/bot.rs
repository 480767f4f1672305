//! A participant bot: joins a session with a token, publishes VP8 video (from an IVF file, or
//! synthetic) and Opus audio, subscribes to everyone, and after a while prints what it received.
//!
//! Run with `cargo run --example bot --features participant -- <token> [--ivf FILE] [--seconds N]`.
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
    let token = args.first().ok_or("usage: bot <token> [--ivf FILE] [--seconds N]")?.clone();
    let flag = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let seconds: u64 = flag("--seconds").map(|s| s.parse()).transpose()?.unwrap_or(10);
    let source = match flag("--ivf") {
        Some(path) => MediaSource::IvfFile(path.into()),
        None => MediaSource::Synthetic { fps: 15, packet_size: 800 },
    };

    let options = JoinOptions::new()
        .with_client_data("rust-bot")
        .with_platform("openvidu-rs bot")
        .with_accept_invalid_certs(true);
    let bot = Participant::join(&token, options).await?;
    println!("joined {} (session {})", bot.connection_id(), bot.session_id());
    let stream = bot.publish(PublishOptions::new(source)).await?;
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
