//! SFU fan-out harness: one synthetic publisher and N subscriber bots against a real
//! `openvidu-server` process, measuring the forwarded RTP packets per CPU-second of the server
//! (user + system time from `/proc/<pid>/stat`, not wall time) and the latency read from the
//! send timestamps the synthetic packets carry: to the bots' track readers (`p50 ms`, `p99 ms`,
//! the wait in this process included) and to the kernel's receive timestamp at the bots' sockets
//! (`sock p50`, `sock p99`: what the server and loopback added).
//!
//! Run with `cargo bench --bench fanout --features participant` (add
//! `-- --subscribers 1,10,50,100 --seconds 5 --warmup 3 --fps 30 --packet-size 1000` to change
//! the load; the window opens `--warmup` seconds after every subscriber receives; `--rooms 20x8`
//! adds a row for 20 sessions of 8 participants each publishing and subscribing to the others,
//! prefixed `rooms 20x8`, whose N is the number of subscriptions; `--pin` runs the server of the
//! 1 → N rows on one CPU of its own and the bots on the others, see `support::Pinning`; the bots
//! check ICE consent every 2.5 s, as Chrome on a stable connection, and every 500 ms, the
//! participant client's default, with `--bot-ice fast`: see `support::FanoutArgs::bot_ice`).
//! It uses `target/release/openvidu-server`, building it with
//! `cargo build --release -p openvidu-server` when missing (or pass `--server-bin PATH`). Each N
//! gets a fresh server on plain HTTP (`OPENVIDU_HTTPS=false`, `HTTPS_PORT=0`). The bots share
//! one tokio runtime in this process and decode nothing, but they still compete with the server
//! for this machine's cores (their own CPU time is the last column): compare the rows with each
//! other, not with other machines. Expect one line per N; `vs N=1` is the server's CPU per
//! forwarded packet relative to the first N of the list.

use std::path::Path;

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{OpenVidu, SessionProperties};

mod support;

use support::{
    FanoutArgs, FanoutRow, FanoutSubscriber, Pinning, SECRET, ServerProcess, Tally, fanout_args, in_batches,
    measure_window, print_fanout_header, print_fanout_row, server_binary, subscribers_of,
};

impl FanoutSubscriber for Participant {
    fn receiving(&self) -> bool {
        self.stats().first().is_some_and(|st| st.video.packets > 0 && st.audio.packets > 0)
    }

    fn reset(&self) {
        self.reset_stats();
    }

    fn tally(&self, tally: &mut Tally) {
        for st in self.stats() {
            tally.add(&st.audio);
            tally.add(&st.video);
        }
    }
}

async fn measure(bin: &Path, n: usize, a: &FanoutArgs, pinning: Option<&Pinning>) -> FanoutRow {
    let server = ServerProcess::start_pinned(bin, &[], pinning);
    let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
    let session = rest
        .create_session(SessionProperties::builder().custom_session_id(format!("fanout{n}")).build())
        .await
        .expect("a session");
    let mut tokens = Vec::new();
    for _ in 0..=n {
        let c = session.create_connection(Default::default()).await.expect("a connection");
        tokens.push(c.token.expect("a token"));
    }
    let publisher_token = tokens.remove(0);
    let options = JoinOptions::new().with_ice_liveness(a.bot_ice);
    let publisher = Participant::join(&publisher_token, options.clone()).await.expect("the publisher joins");
    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let stream = publisher.publish(PublishOptions::new(source)).await.expect("the publisher publishes");
    let subscribers = subscribers_of(tokens, stream, options).await;

    let row = measure_window(server.child.id(), &subscribers, a).await;
    for s in subscribers.iter().chain(std::iter::once(&publisher)) {
        let _ = s.leave().await;
    }
    drop(server);
    row
}

/// M sessions of K participants, each publishing and subscribing to the K - 1 others: the
/// row's N is the number of subscriptions.
async fn measure_rooms(bin: &Path, m: usize, k: usize, a: &FanoutArgs) -> FanoutRow {
    let server = ServerProcess::start(bin, &[]);
    let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
    let mut tokens = Vec::new();
    for room in 0..m {
        let session = rest
            .create_session(SessionProperties::builder().custom_session_id(format!("room{room}")).build())
            .await
            .expect("a session");
        for _ in 0..k {
            tokens.push(
                session.create_connection(Default::default()).await.expect("a connection").token.expect("a token"),
            );
        }
    }
    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let options = JoinOptions::new().with_ice_liveness(a.bot_ice);
    let bots: Vec<Participant> = in_batches(tokens, 10, |token| {
        let (source, options) = (source.clone(), options.clone());
        async move {
            let bot = Participant::join(&token, options).await.expect("a bot joins");
            bot.publish(PublishOptions::new(source)).await.expect("a bot publishes");
            bot
        }
    })
    .await;
    // On a machine this scenario overloads (2 cores: the server and 160 bots), a bot's
    // publisher may be reconnecting (`reconnectStream`) at the moment another subscribes to it;
    // the subscriber then subscribes again when the stream is published anew (`subscribe_all`
    // stays on), and the window shows the loss. Reported, not fatal.
    let mut failed = Vec::new();
    for bot in &bots {
        if let Err(e) = bot.subscribe_all().await {
            failed.push(e.to_string());
        }
    }
    if let Some(first) = failed.first() {
        println!(
            "note: rooms {m}x{k}: {} of {} bots could not subscribe to every stream at once (first: {first}); they subscribe again when it is republished",
            failed.len(),
            bots.len()
        );
    }
    let mut row = measure_window(server.child.id(), &bots, a).await;
    row.subscribers = m * k * (k - 1);
    for b in &bots {
        let _ = b.leave().await;
    }
    drop(server);
    row
}

fn main() {
    let a = fanout_args();
    let bin = server_binary(a.server_bin.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let pinning = Pinning::from_args(&a);
    println!(
        "fan-out of one publisher ({} fps x {} B video + 50 pps audio), {} s windows, server {}{}, {}",
        a.fps,
        a.packet_size,
        a.seconds,
        bin.display(),
        Pinning::heading(pinning.as_ref()),
        a.bot_ice_heading(),
    );
    print_fanout_header("");
    let mut base = None;
    for &n in &a.subscribers {
        let row = rt.block_on(measure(&bin, n, &a, pinning.as_ref()));
        print_fanout_row("", &row, &mut base);
    }
    if let Some((m, k)) = a.rooms.filter(|(m, k)| *m > 0 && *k > 1) {
        // Every participant of the rooms publishes: more bots than one core carries, so the
        // rooms share every core with the server.
        if let Some(p) = &pinning {
            p.unpin();
        }
        // N = subscriptions; "vs N=1" compares with the first row above.
        let row = rt.block_on(measure_rooms(&bin, m, k, &a));
        print_fanout_row(&format!("rooms {m}x{k}"), &row, &mut base);
    }
}
