//! Media reconnection (`reconnectStream`, spec §2.4.6): a publisher republishing its stream on a
//! new peer connection, a subscriber renegotiating its subscription, and what the server pushes
//! to subscribers afterwards (`forciblyReconnectSubscriber`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvidu_client::participant::{JoinOptions, Negotiation, Participant, ParticipantError, ParticipantEvent};
use openvidu_client::{OpenVidu, OpenViduRole};
use openvidu_server::Server;
use tokio::net::UdpSocket;

use super::{Harness, expect_event, light, received_from, receives};

/// Joins `session` with this negotiation of subscriptions.
async fn join_with(session: &openvidu_client::Session, negotiation: Negotiation) -> Participant {
    let connection = session.create_connection(Default::default()).await.expect("a connection");
    let token = connection.token.expect("a token");
    Participant::join(&token, JoinOptions::new().with_negotiation(negotiation)).await.expect("joins")
}

#[tokio::test]
async fn a_republished_stream_keeps_its_id_and_its_subscriber_gets_media_again() {
    let h = Harness::start().await;
    let session = h.session("media-reconnect-publisher").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Subscriber, "b").await;
    let stream = a.publish(light()).await.expect("a publishes");
    b.subscribe(&stream).await.expect("b subscribes");
    receives(&b, &a).await;

    a.reconnect_publisher().await.expect("a republishes");
    assert_eq!(a.published_stream(), Some(stream.clone()), "the stream id stays");
    let e = expect_event(&a, "a's reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    assert_eq!(e, ParticipantEvent::MediaReconnected { stream_id: stream.clone(), publisher: true });
    assert_eq!(b.subscriptions(), vec![stream.clone()], "b still subscribes to the same stream");

    // The server tears down b's endpoint with the old publisher and pushes a new one
    // (`forciblyReconnectSubscriber`); failing that, b's ICE fails and b renegotiates itself.
    let before = received_from(&b, &a);
    let e =
        expect_event(&b, "b's subscription reconnected", |e| matches!(e, ParticipantEvent::MediaReconnected { .. }))
            .await;
    assert_eq!(e, ParticipantEvent::MediaReconnected { stream_id: stream.clone(), publisher: false });
    receives(&b, &a).await;
    let after = received_from(&b, &a);
    assert!(after.0 > before.0 && after.1 > before.1, "the counters go on: {before:?} then {after:?}");
    let stats = b.stats();
    assert!(stats[0].connected, "{stats:?}");
    // Twice works too, and the REST API still sees one publisher and one subscriber.
    a.reconnect_publisher().await.expect("a republishes again");
    expect_event(&b, "b reconnected again", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    receives(&b, &a).await;
    // Back to back: b gets two pushes in a row (the last one wins) and ends up receiving.
    a.reconnect_publisher().await.expect("a republishes a third time");
    a.reconnect_publisher().await.expect("a republishes a fourth time");
    expect_event(&b, "b reconnected once more", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    receives(&b, &a).await;
    session.fetch().await.unwrap();
    let ca = session.connection(a.connection_id()).unwrap();
    assert_eq!(ca.publishers.len(), 1);
    assert_eq!(ca.publishers[0].stream_id, stream);
    assert_eq!(session.connection(b.connection_id()).unwrap().subscribers.len(), 1);
}

async fn a_subscriber_renegotiates(negotiation: Negotiation) {
    let h = Harness::start().await;
    let session = h.session(&format!("media-reconnect-subscriber-{negotiation:?}")).await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = join_with(&session, negotiation).await;
    let stream = a.publish(light()).await.expect("a publishes");
    b.subscribe(&stream).await.expect("b subscribes");
    receives(&b, &a).await;
    let before = received_from(&b, &a);

    b.reconnect_subscription(a.connection_id()).await.expect("b renegotiates");
    let e = expect_event(&b, "b's reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    assert_eq!(e, ParticipantEvent::MediaReconnected { stream_id: stream.clone(), publisher: false });
    receives(&b, &a).await;
    let after = received_from(&b, &a);
    assert!(after.0 > before.0 && after.1 > before.1, "the counters go on: {before:?} then {after:?}");
    let stats = b.stats();
    assert_eq!(stats.len(), 1);
    assert!(stats[0].connected, "{stats:?}");
    // The new connection numbers its packets afresh: no phantom losses over loopback.
    assert!(stats[0].video.lost < stats[0].video.packets / 2, "{stats:?}");
    assert!(!a.is_closed() && a.is_publisher_connected());
}

#[tokio::test]
async fn a_subscriber_offering_renegotiates_with_reconnect_stream() {
    a_subscriber_renegotiates(Negotiation::ClientOffers).await;
}

#[tokio::test]
async fn a_subscriber_answering_the_server_renegotiates_with_reconnect_stream() {
    a_subscriber_renegotiates(Negotiation::ServerOffers).await;
}

#[tokio::test]
async fn media_reconnections_need_a_stream() {
    let h = Harness::start().await;
    let session = h.session("media-reconnect-nothing").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    assert!(matches!(a.reconnect_publisher().await, Err(ParticipantError::NotPublishing)));
    assert!(matches!(
        a.reconnect_subscription(b.connection_id()).await,
        Err(ParticipantError::NotSubscribed(c)) if &c == b.connection_id()
    ));
    a.leave().await.unwrap();
    assert!(matches!(a.reconnect_publisher().await, Err(ParticipantError::Closed)));
    assert!(matches!(a.reconnect_subscription(b.connection_id()).await, Err(ParticipantError::Closed)));
}

/// A UDP relay in front of the SFU, standing for a media node: the server announces its ICE
/// candidates on `127.0.0.2:P` (this relay) while it listens on `127.0.0.1:P`. Each client
/// address gets its own upstream socket (a flow), like a NAT. [`kill`](Self::kill) silences
/// the flows relayed so far, both ways (their media node died), while new flows (the new peer
/// connections of a media reconnection) go through (to their new media node).
struct MediaRelay {
    flows: Arc<Mutex<Flows>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Flows {
    /// Flows started so far.
    count: u64,
    /// Flows silenced: ranges of flow numbers.
    dead: Vec<std::ops::Range<u64>>,
}

impl Flows {
    fn alive(&self, flow: u64) -> bool {
        !self.dead.iter().any(|r| r.contains(&flow))
    }
}

impl MediaRelay {
    const FRONT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    /// Relays `FRONT:port` to `127.0.0.1:port`.
    async fn start(port: u16) -> Self {
        let front = Arc::new(UdpSocket::bind(SocketAddr::new(Self::FRONT, port)).await.expect("the relay binds"));
        let sfu = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let flows = Arc::new(Mutex::new(Flows::default()));
        let task = tokio::spawn({
            let flows = flows.clone();
            async move {
                let mut upstream: HashMap<SocketAddr, (Arc<UdpSocket>, u64)> = HashMap::new();
                let mut buf = vec![0u8; 2048];
                while let Ok((n, client)) = front.recv_from(&mut buf).await {
                    let (up, flow) = match upstream.get(&client) {
                        Some(known) => known.clone(),
                        None => {
                            let Ok(up) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                            let up = Arc::new(up);
                            let flow = {
                                let mut f = flows.lock().unwrap();
                                f.count += 1;
                                f.count - 1
                            };
                            let (front, up2, flows) = (front.clone(), up.clone(), flows.clone());
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; 2048];
                                while let Ok((n, _)) = up2.recv_from(&mut buf).await {
                                    if flows.lock().unwrap().alive(flow) {
                                        let _ = front.send_to(&buf[..n], client).await;
                                    }
                                }
                            });
                            upstream.insert(client, (up.clone(), flow));
                            (up, flow)
                        }
                    };
                    if flows.lock().unwrap().alive(flow) {
                        let _ = up.send_to(&buf[..n], sfu).await;
                    }
                }
            }
        });
        Self { flows, task }
    }

    /// The number of the next flow.
    fn next_flow(&self) -> u64 {
        self.flows.lock().unwrap().count
    }

    /// Silences every flow from number `first` on.
    fn kill_from(&self, first: u64) {
        let mut f = self.flows.lock().unwrap();
        let end = f.count;
        f.dead.push(first..end);
    }

    /// Silences every flow so far.
    fn kill(&self) {
        self.kill_from(0);
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server whose media goes through a [`MediaRelay`].
async fn relayed_server() -> (Harness, MediaRelay) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
    let relay = MediaRelay::start(port).await;
    let server = Server::builder()
        .https(false)
        .address(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .configure(|c| {
            c.domain_or_public_ip = Some(MediaRelay::FRONT.to_string());
            c.webrtc_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
            c.webrtc_udp_port = port;
        })
        .start()
        .await
        .expect("the server starts");
    let rest = OpenVidu::new(server.url(), server.secret()).expect("a REST client");
    (Harness { server, rest }, relay)
}

#[tokio::test]
async fn peers_whose_media_node_goes_silent_reconnect_by_themselves() {
    let (h, relay) = relayed_server().await;
    let session = h.session("media-reconnect-silent").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Subscriber, "b").await;
    let stream = a.publish(light()).await.expect("a publishes");
    b.subscribe(&stream).await.expect("b subscribes");
    receives(&b, &a).await;

    let killed = Instant::now();
    relay.kill();
    // a notices its ICE failing and republishes; b is reconnected (pushed by the server after
    // the republication, or by itself after its own ICE failure).
    let e = expect_event(&a, "a's reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    assert_eq!(e, ParticipantEvent::MediaReconnected { stream_id: stream.clone(), publisher: true });
    let republished = killed.elapsed();
    assert!(republished < Duration::from_secs(8), "republished after {republished:?}");
    expect_event(&b, "b's reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { publisher: false, .. }))
        .await;
    receives(&b, &a).await;
    assert_eq!(a.published_stream(), Some(stream.clone()));
    assert!(a.is_publisher_connected());
    tracing::info!(?republished, total = ?killed.elapsed(), "media back");
    // Once more.
    relay.kill();
    expect_event(&a, "a's second reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    expect_event(&b, "b's second reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    receives(&b, &a).await;
    a.leave().await.unwrap();
    b.leave().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_whose_connection_goes_silent_renegotiates_by_itself() {
    let (h, relay) = relayed_server().await;
    let session = h.session("media-reconnect-subscriber-silent").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Subscriber, "b").await;
    let stream = a.publish(light()).await.expect("a publishes");
    super::eventually("a connected", || a.is_publisher_connected()).await;
    // Only b's connection dies: no republication, so no push from the server.
    let b_flows = relay.next_flow();
    b.subscribe(&stream).await.expect("b subscribes");
    receives(&b, &a).await;
    let killed = Instant::now();
    relay.kill_from(b_flows);
    let e = expect_event(&b, "b's reconnection", |e| matches!(e, ParticipantEvent::MediaReconnected { .. })).await;
    assert_eq!(e, ParticipantEvent::MediaReconnected { stream_id: stream.clone(), publisher: false });
    assert!(killed.elapsed() < Duration::from_secs(10), "reconnected after {:?}", killed.elapsed());
    receives(&b, &a).await;
    assert!(a.is_publisher_connected());
    assert!(a.try_next_event().is_none_or(|e| !matches!(e, ParticipantEvent::MediaReconnected { .. })));
}
