//! A node on its own media thread ([`MediaWorker`]): publishers' connections and the fan-out run
//! there, negotiation and the subscribers' connections on the caller's runtime (this test's).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use openvidu_media::{MediaConfig, MediaNode, MediaWorker};
use tokio::sync::mpsc;

use crate::support::*;

async fn worker_harness() -> Arc<crate::peers::Harness<MediaWorker>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = MediaWorker::start(MediaConfig::default(), tx).expect("a media worker");
    crate::peers::Harness::over(Arc::new(worker), rx, ()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_worker_receive_both_tracks_either_side_offering() {
    let h = worker_harness().await;
    let stream = stream("str_CAM_Wrk0_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let mut peers = Vec::new();
    for i in 0..3 {
        peers.push(subscribe_client_offer(&h, &connection(&format!("con_Cli{i}")), &stream).await);
    }
    peers.push(subscribe_server_offer(&h, &connection("con_Srv"), &stream).await);
    for (i, peer) in peers.iter().enumerate() {
        eventually(&format!("subscriber {i} connected"), || peer.is_connected()).await;
        assert_receives_both(peer, 15).await;
    }
    let load = h.node.load().await;
    assert_eq!((load.publishers, load.subscribers), (1, 4));
}

/// The subscribers' drivers run on the caller's runtime, which outlives the worker: stopping the
/// worker must end them too, or each would hold the node's UDP port open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_worker_with_subscribers_releases_its_udp_port() {
    let h = worker_harness().await;
    let port = h.node.udp_port().expect("mux mode by default");
    let addresses: Vec<SocketAddr> =
        MediaConfig::default().ice_host_addresses.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    let stream = stream("str_CAM_Wrk1_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let subscriber = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    assert_receives_both(&subscriber, 10).await;
    assert!(UdpSocket::bind(addresses[0]).is_err(), "the worker holds its port");

    // The clients go first (their candidate tasks hold the node), then the harness, the last
    // owner of the worker.
    let _ = subscriber.pc.close().await;
    let _ = publisher.peer.pc.close().await;
    drop((subscriber, publisher, h));
    eventually("the worker's UDP port is free again", || addresses.iter().all(|a| UdpSocket::bind(a).is_ok())).await;
}
