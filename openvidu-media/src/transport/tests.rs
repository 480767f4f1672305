use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A STUN Binding request carrying `username` (plus another attribute before it).
fn binding_request(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    // PRIORITY (0x0024), 4 bytes.
    attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut msg = vec![0x00, 0x01];
    msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[7; 12]);
    msg.extend_from_slice(&attrs);
    msg
}

#[test]
fn stun_username_is_read_from_binding_requests_only() {
    let req = binding_request("serverufrag:clientufrag");
    assert_eq!(stun_binding_username(&req), Some("serverufrag:clientufrag"));
    let mut response = req.clone();
    response[1] = 0x01;
    response[0] = 0x01; // 0x0101 Binding success response
    assert_eq!(stun_binding_username(&response), None);
}

#[test]
fn stun_parser_survives_truncated_and_hostile_input() {
    let req = binding_request("abc:def");
    for len in 0..req.len() {
        let _ = stun_binding_username(&req[..len]);
    }
    assert_eq!(stun_binding_username(&[]), None);
    // DTLS and RTP first bytes are never STUN.
    assert_eq!(stun_binding_username(&[22; 40]), None);
    assert_eq!(stun_binding_username(&[0x80; 40]), None);
    // An attribute length pointing past the end.
    let mut bad = req.clone();
    bad[20 + 2] = 0xFF;
    assert_eq!(stun_binding_username(&bad), None);
}

#[test]
fn binding_requests_route_by_ufrag_and_bind_the_sender_address() {
    let mut table = MuxTable::default();
    let a = table.register("ufragA");
    let b = table.register("ufragB");
    let client1 = addr("10.0.0.1:5000");
    let client2 = addr("10.0.0.2:6000");
    assert_eq!(table.route(client1, &binding_request("ufragA:x")), Some(a));
    assert_eq!(table.route(client2, &binding_request("ufragB:y")), Some(b));
    // DTLS/SRTP afterwards goes by address.
    assert_eq!(table.route(client1, &[22, 254, 253]), Some(a));
    assert_eq!(table.route(client2, &[0x80, 96]), Some(b));
    assert_eq!(table.route(addr("10.0.0.3:1"), &[22]), None);
    assert_eq!(table.route(addr("10.0.0.3:1"), &binding_request("nobody:x")), None);
}

#[test]
fn destinations_a_peer_sends_to_route_their_replies_back() {
    let mut table = MuxTable::default();
    let a = table.register("ufragA");
    let remote = addr("192.168.1.5:40000");
    assert_eq!(table.route(remote, &[1, 1, 0, 0]), None);
    table.note_destination(a, remote);
    assert_eq!(table.route(remote, &[1, 1, 0, 0]), Some(a));
}

#[test]
fn a_binding_request_moves_an_address_to_its_ufrags_peer() {
    let mut table = MuxTable::default();
    let a = table.register("ufragA");
    let b = table.register("ufragB");
    let remote = addr("10.0.0.9:9");
    table.note_destination(a, remote);
    assert_eq!(table.route(remote, &binding_request("ufragB:z")), Some(b));
    assert_eq!(table.route(remote, &[22]), Some(b));
    // Noting a known address does not steal it back.
    table.note_destination(a, remote);
    assert_eq!(table.route(remote, &[22]), Some(b));
    // Unregistering a does not drop b's address.
    table.unregister(a);
    assert_eq!(table.route(remote, &[22]), Some(b));
}

#[test]
fn unregister_forgets_ufrag_and_addresses() {
    let mut table = MuxTable::default();
    let a = table.register("ufragA");
    let remote = addr("10.0.0.1:1");
    table.route(remote, &binding_request("ufragA:q"));
    table.unregister(a);
    assert_eq!(table.len(), 0);
    assert_eq!(table.route(remote, &[22]), None);
    assert_eq!(table.route(remote, &binding_request("ufragA:q")), None);
    table.note_destination(a, remote);
    assert_eq!(table.route(remote, &[22]), None, "a dead slot learns nothing");
}

#[test]
fn a_binding_request_for_a_gone_ufrag_is_dropped_not_routed_by_address() {
    let mut table = MuxTable::default();
    let old = table.register("ufragOld");
    let new = table.register("ufragNew");
    let client = addr("10.0.0.7:7000");
    // The client's new peer connection checks the new endpoint from the same address family;
    // the new endpoint learned the old client address as a destination.
    table.note_destination(new, client);
    table.unregister(old);
    // The client's old peer connection keeps checking the closed endpoint.
    assert_eq!(table.route(client, &binding_request("ufragOld:c1")), None);
    // Its DTLS and the new endpoint's own requests still arrive.
    assert_eq!(table.route(client, &[22]), Some(new));
    assert_eq!(table.route(client, &binding_request("ufragNew:c2")), Some(new));
}

/// The least receive buffer a socket should report after asking for [`MUX_RECV_BUFFER`]: Linux
/// doubles a request, within twice `net.core.rmem_max`. `None` where that limit is unreadable.
fn granted_at_least() -> Option<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()?;
    Some((MUX_RECV_BUFFER * 2).min(max * 2))
}

#[test]
fn a_receive_buffer_grows_as_far_as_the_kernel_allows() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
    let after = enlarge_receive_buffer(&socket, MUX_RECV_BUFFER);
    assert_eq!(after, socket2::SockRef::from(&socket).recv_buffer_size().unwrap(), "reports what the socket has");
    assert!(after >= before, "shrunk from {before} to {after}");
    if let Some(least) = granted_at_least() {
        assert!(after >= least, "{after} bytes, at least {least} expected");
    }
}

#[tokio::test]
async fn the_mux_socket_gets_the_large_receive_buffer() {
    let transport = Transport::new(&["127.0.0.1".parse().unwrap()], None, &UdpPorts::Mux { port: 0 }).unwrap();
    let Mode::Mux { ports, .. } = &transport.mode else { panic!("not in mux mode") };
    let port = ports.values().next().unwrap();
    let size = socket2::SockRef::from(&*port.socket).recv_buffer_size().unwrap();
    if let Some(least) = granted_at_least() {
        assert!(size >= least, "{size} bytes, at least {least} expected");
    }
}

/// The socket's `IP_MTU_DISCOVER` setting.
fn mtu_discover(fd: std::os::fd::BorrowedFd<'_>) -> libc::c_int {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor, and a c_int with its length for the kernel to fill.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value
}

#[tokio::test]
async fn the_mux_socket_sends_with_dont_fragment() {
    use std::os::fd::AsFd;
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_ne!(mtu_discover(plain.as_fd()), libc::IP_PMTUDISC_PROBE, "not the kernel's default");
    let transport = Transport::new(&["127.0.0.1".parse().unwrap()], None, &UdpPorts::Mux { port: 0 }).unwrap();
    let Mode::Mux { ports, .. } = &transport.mode else { panic!("not in mux mode") };
    let port = ports.values().next().unwrap();
    assert_eq!(mtu_discover(port.socket.as_fd()), libc::IP_PMTUDISC_PROBE);
}

#[tokio::test]
async fn the_media_path_is_the_last_destination_of_anything_but_stun() {
    let path = MediaPath::default();
    let (first, second) = (Arc::new(MuxSocket::loopback()), Arc::new(MuxSocket::loopback()));
    let (a, b) = (addr("127.0.0.1:1000"), addr("127.0.0.1:2000"));
    path.sent(&first, a, &binding_request("them:us"));
    assert!(path.get().is_none(), "a STUN check goes to every candidate pair");
    path.sent(&first, a, &[22, 254, 253, 0]);
    let got = path.get().expect("DTLS names the selected pair");
    assert!(Arc::ptr_eq(&got.socket, &first) && got.to == a);
    path.sent(&second, b, &binding_request("them:us"));
    assert_eq!(path.get().expect("kept").to, a, "checks on other pairs leave it");
    // SRTCP on another pair (ICE selected a new one).
    path.sent(&second, b, &[0x80, 200, 0, 6]);
    let got = path.get().expect("followed");
    assert!(Arc::ptr_eq(&got.socket, &second) && got.to == b);
    path.sent(&second, a, &[]);
    assert_eq!(path.get().expect("kept").to, b, "an empty datagram names nothing");
}

/// The next datagram a peer connection's mux socket gives it.
async fn next_datagram(socket: &dyn AsyncUdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut meta = [RecvMeta::default()];
    let n = std::future::poll_fn(|cx| socket.poll_recv(cx, &mut [IoSliceMut::new(&mut buf)], &mut meta))
        .await
        .expect("received");
    assert_eq!(n, 1);
    buf[..meta[0].len].to_vec()
}

async fn in_time<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), what).await.expect("in time")
}

/// An SRTCP datagram: one RTCP packet of `packet_type`, `words` long after its first word, and
/// an HMAC-SHA1 trailer (index and 80-bit tag).
fn srtcp(packet_type: u8, words: u16) -> Vec<u8> {
    let mut d = vec![0x81, packet_type];
    d.extend_from_slice(&words.to_be_bytes());
    d.resize(usize::from(words + 1) * 4 + 14, 0xAA);
    d
}

/// A connection driven on another runtime than the mux's: once it is up, its consent checks and
/// lone reports wait for a batch, which goes after [`hold::HOLD`], or with the next datagram
/// that cannot wait, before it.
#[tokio::test]
async fn the_mux_holds_what_can_wait_for_a_connection_driven_elsewhere() {
    let drivers = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let transport = Transport::new(&["127.0.0.1".parse().unwrap()], None, &UdpPorts::Mux { port: 0 }).unwrap();
    let port = transport.mux_port().unwrap();
    let path = Arc::new(MediaPath::default());
    let local = addr("127.0.0.1:1");
    let peer = transport.replace_socket(local, "ufragH", &path, Some(drivers.handle())).unwrap().socket;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let node = addr(&format!("127.0.0.1:{port}"));
    let deliver = |datagram: Vec<u8>| {
        let client = &client;
        async move {
            client.send_to(&datagram, node).await.unwrap();
            datagram
        }
    };

    // Coming up: the checks go at once, and so does the first SRTCP, which says the connection is up.
    let check = deliver(binding_request("ufragH:c")).await;
    assert_eq!(in_time(next_datagram(&*peer)).await, check);
    let first_report = deliver(srtcp(201, 7)).await;
    assert_eq!(in_time(next_datagram(&*peer)).await, first_report);

    // Up: nothing else comes, so a lone report waits out the hold (a bound that only a late
    // release could break the other way).
    let sent = std::time::Instant::now();
    let report = deliver(srtcp(200, 12)).await;
    assert_eq!(in_time(next_datagram(&*peer)).await, report);
    assert!(sent.elapsed() >= hold::HOLD, "released after {:?}", sent.elapsed());

    // A lone receiver report and a consent check wait; a PLI releases them and comes after them.
    let report = deliver(srtcp(201, 7)).await;
    let check = deliver(binding_request("ufragH:c")).await;
    let pli = deliver(srtcp(206, 2)).await;
    for expected in [report, check, pli] {
        assert_eq!(in_time(next_datagram(&*peer)).await, expected);
    }
    drivers.shutdown_background();
}
