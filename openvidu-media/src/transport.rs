//! UDP for the peers: one multiplexed port per host address, or a port per peer from a range.
//!
//! webrtc 0.21 binds its own sockets per peer connection (`with_udp_addrs`) and has no UDP mux.
//! Each peer connection therefore gets an [`EndpointRuntime`]: the tokio runtime with
//! `wrap_udp_socket` replaced. The socket the driver bound (on an ephemeral port `L`) is dropped
//! and swapped for
//! - in mux mode, a virtual socket fed by the node's shared socket `M`: datagrams are routed to
//!   the peer connection by the STUN `USERNAME` (its ICE ufrag, which the node picks) and then by
//!   the remote address ([`MuxTable`]);
//! - in range mode, a socket bound to a free port `R` of the range.
//!
//! The driver keeps using `L` as the socket's key, so the ICE agent's host candidate names `L`;
//! [`AdvertisedAddrs`] records `L → M` (or `L → R`, with the announced IP if any) and the node
//! rewrites each local candidate before it leaves.

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, TokioRuntime,
    Transmit,
};

use crate::config::UdpPorts;
use crate::node::MediaError;

mod batch;
mod hold;
mod mux_socket;
#[cfg(test)]
mod tests;

pub(crate) use batch::SendBatch;
pub(crate) use mux_socket::MuxSocket;

/// Datagrams queued per peer connection before the mux drops new ones.
const PEER_QUEUE: usize = 2048;
/// The largest datagram the mux reads.
const MAX_DATAGRAM: usize = 2048;
/// The receive buffer asked for on a shared mux socket. Every peer connection of the node reads
/// through that one socket: with the kernel's default (212,992 bytes, about 90 small datagrams
/// on loopback, where each costs ~2.3 KB of buffer) a burst arriving while the mux task waits
/// for a CPU overflowed it, and the kernel dropped datagrams of every connection alike — media,
/// and handshakes (a lost DTLS flight 5 left a connection that never came up).
/// The kernel caps the request at `net.core.rmem_max`; the node logs what it got.
const MUX_RECV_BUFFER: usize = 8 << 20;

/// Identifies one registered peer connection socket in a [`MuxTable`].
pub(crate) type SlotId = u64;

/// The magic cookie of every STUN message (RFC 5389), bytes 4 to 8 of its header.
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// The `USERNAME` of a STUN Binding request, if `datagram` is one.
pub(crate) fn stun_binding_username(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 || datagram[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    if msg_type != 0x0001 {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(20..20 + body_len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if typ == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Which peer connection a datagram arriving on a shared port belongs to. Sans-IO.
///
/// A STUN Binding request names its target by `USERNAME` = `<target ufrag>:<sender ufrag>`;
/// that binds the sender's address to the target. A request for a ufrag nobody has (a peer
/// connection closed by a renegotiation, while the client's old one still checks) is dropped,
/// never handed to whoever owns the sender's address: webrtc's ICE agent handles a request's
/// role-conflict attributes before it checks the request's credentials, so a stray request
/// could flip the role of an unrelated agent, leaving both ends controlled and the connection
/// never nominated. Everything else (STUN responses, DTLS, SRTP) is routed by the remote
/// address, learned from those requests and from the destinations each peer connection sends
/// to.
#[derive(Debug, Default)]
pub(crate) struct MuxTable {
    next: SlotId,
    by_ufrag: HashMap<String, SlotId>,
    by_addr: HashMap<SocketAddr, SlotId>,
    addrs_of: HashMap<SlotId, HashSet<SocketAddr>>,
}

impl MuxTable {
    /// Registers a peer connection by its local ICE ufrag.
    pub(crate) fn register(&mut self, ufrag: &str) -> SlotId {
        self.next += 1;
        let slot = self.next;
        self.by_ufrag.insert(ufrag.to_owned(), slot);
        self.addrs_of.insert(slot, HashSet::new());
        slot
    }

    /// Forgets a peer connection and every address bound to it.
    pub(crate) fn unregister(&mut self, slot: SlotId) {
        self.by_ufrag.retain(|_, s| *s != slot);
        if let Some(addrs) = self.addrs_of.remove(&slot) {
            for addr in addrs {
                if self.by_addr.get(&addr) == Some(&slot) {
                    self.by_addr.remove(&addr);
                }
            }
        }
    }

    /// The slot a datagram from `from` goes to, if any.
    pub(crate) fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<SlotId> {
        if let Some(username) = stun_binding_username(datagram) {
            let target = username.split(':').next().unwrap_or_default();
            let slot = *self.by_ufrag.get(target)?;
            self.bind(slot, from);
            return Some(slot);
        }
        self.by_addr.get(&from).copied()
    }

    /// `slot` sends to `to`: replies from there are its own.
    pub(crate) fn note_destination(&mut self, slot: SlotId, to: SocketAddr) {
        if self.addrs_of.contains_key(&slot) && !self.by_addr.contains_key(&to) {
            self.bind(slot, to);
        }
    }

    fn bind(&mut self, slot: SlotId, addr: SocketAddr) {
        if let Some(previous) = self.by_addr.insert(addr, slot)
            && previous != slot
            && let Some(addrs) = self.addrs_of.get_mut(&previous)
        {
            addrs.remove(&addr);
        }
        if let Some(addrs) = self.addrs_of.get_mut(&slot) {
            addrs.insert(addr);
        }
    }

    /// Registered peer connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.addrs_of.len()
    }
}

type Datagram = (Vec<u8>, SocketAddr);

#[derive(Default)]
struct MuxState {
    table: MuxTable,
    sinks: HashMap<SlotId, Sink>,
}

/// Where the mux puts a peer connection's datagrams.
struct Sink {
    queue: mpsc::Sender<Datagram>,
    /// The runtime the connection's driver runs on, when not the mux's own: what can wait is
    /// held for it ([`hold`]).
    driven_on: Option<tokio::runtime::Handle>,
    /// SRTP or SRTCP has come from the peer: DTLS is done, the connection is up.
    up: bool,
}

/// One shared UDP socket and its routing state.
struct MuxPort {
    socket: Arc<MuxSocket>,
    state: Arc<Mutex<MuxState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MuxPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node's UDP ports.
pub(crate) struct Transport {
    mode: Mode,
    announced: Option<IpAddr>,
    host_ips: Vec<IpAddr>,
}

enum Mode {
    Mux { port: u16, ports: HashMap<IpAddr, MuxPort> },
    Range { min: u16, max: u16, next: Mutex<u16> },
}

impl Transport {
    /// Binds the shared sockets (mux mode). Must run inside a tokio runtime.
    pub(crate) fn new(host_ips: &[IpAddr], announced: Option<IpAddr>, udp: &UdpPorts) -> Result<Self, MediaError> {
        if host_ips.is_empty() {
            return Err(MediaError::Config("no ICE host address configured".into()));
        }
        let mode = match *udp {
            UdpPorts::Mux { port } => {
                let mut bound_port = port;
                let mut ports = HashMap::new();
                for ip in host_ips {
                    let socket = std::net::UdpSocket::bind(SocketAddr::new(*ip, bound_port))
                        .map_err(|e| MediaError::Config(format!("cannot bind UDP {ip}:{bound_port}: {e}")))?;
                    bound_port = socket.local_addr().map_err(config_io)?.port();
                    let recv_buffer = enlarge_receive_buffer(&socket, MUX_RECV_BUFFER);
                    // The size reported counts the kernel's bookkeeping (twice the usable bytes):
                    // below the request, the node has less than half of what it asked for.
                    if recv_buffer < MUX_RECV_BUFFER {
                        tracing::warn!(
                            port = bound_port,
                            recv_buffer,
                            wanted = MUX_RECV_BUFFER,
                            "small UDP receive buffer on the media mux: raise net.core.rmem_max, or bursts will be dropped"
                        );
                    } else {
                        tracing::debug!(port = bound_port, recv_buffer, "media mux receive buffer");
                    }
                    set_dont_fragment(&socket);
                    let socket = Arc::new(MuxSocket::new(socket).map_err(config_io)?);
                    let state = Arc::new(Mutex::new(MuxState::default()));
                    let task = tokio::spawn(mux_receive(socket.clone(), state.clone()));
                    ports.insert(*ip, MuxPort { socket, state, task });
                }
                tracing::info!(port = bound_port, addresses = ?host_ips, "media UDP mux bound");
                Mode::Mux { port: bound_port, ports }
            }
            UdpPorts::Range { min, max } => {
                if min == 0 || min > max {
                    return Err(MediaError::Config(format!("bad UDP port range {min}-{max}")));
                }
                Mode::Range { min, max, next: Mutex::new(min) }
            }
        };
        Ok(Self { mode, announced, host_ips: host_ips.to_vec() })
    }

    /// The shared port in mux mode.
    pub(crate) fn mux_port(&self) -> Option<u16> {
        match &self.mode {
            Mode::Mux { port, .. } => Some(*port),
            Mode::Range { .. } => None,
        }
    }

    /// The addresses a peer connection binds (port 0: the runtime swaps the socket).
    pub(crate) fn bind_addrs(&self) -> Vec<SocketAddr> {
        self.host_ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect()
    }

    /// The socket that replaces the one the driver bound at `local` for the peer connection
    /// whose ICE ufrag is `ufrag` (in mux mode, one that records the connection's [`MediaPath`]
    /// in `path`), and the address to advertise for it.
    ///
    /// `driven_on` is the runtime the connection's driver runs on, when it is not the one the
    /// mux reads on.
    fn replace_socket(
        &self,
        local: SocketAddr,
        ufrag: &str,
        path: &Arc<MediaPath>,
        driven_on: Option<&tokio::runtime::Handle>,
    ) -> io::Result<Replacement> {
        let announce = |port| SocketAddr::new(self.announced.unwrap_or(local.ip()), port);
        match &self.mode {
            Mode::Mux { port, ports } => {
                let wildcard = match local.ip() {
                    IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                };
                let Some(mux) = ports.get(&local.ip()).or_else(|| ports.get(&wildcard)) else {
                    return Err(io::Error::other(format!("no UDP mux on {}", local.ip())));
                };
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                let slot = {
                    let mut state = lock(&mux.state);
                    let slot = state.table.register(ufrag);
                    state.sinks.insert(slot, Sink { queue: tx, driven_on: driven_on.cloned(), up: false });
                    slot
                };
                let socket = Arc::new(MuxedSocket {
                    local,
                    slot,
                    socket: mux.socket.clone(),
                    state: mux.state.clone(),
                    rx: Mutex::new(rx),
                    noted: Mutex::new(HashSet::new()),
                    path: path.clone(),
                });
                Ok(Replacement { socket, advertised: announce(*port) })
            }
            Mode::Range { min, max, next } => {
                let span = u32::from(*max - *min) + 1;
                let mut next = lock(next);
                for _ in 0..span {
                    let port = *next;
                    *next = if port >= *max { *min } else { port + 1 };
                    if let Ok(socket) = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), port)) {
                        let socket = TokioRuntime.wrap_udp_socket(socket)?;
                        return Ok(Replacement { socket, advertised: announce(port) });
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("no free UDP port in {min}-{max} on {}", local.ip()),
                ))
            }
        }
    }
}

/// What [`Transport::replace_socket`] gives a peer connection.
struct Replacement {
    socket: Arc<dyn AsyncUdpSocket>,
    advertised: SocketAddr,
}

/// Asks for a receive buffer of `wanted` bytes on `socket` and returns the size it has now (as
/// the kernel reports it: Linux doubles the request for its bookkeeping and caps it at twice
/// `net.core.rmem_max`). A buffer the kernel refuses to grow stays as it was.
pub(crate) fn enlarge_receive_buffer(socket: &std::net::UdpSocket, wanted: usize) -> usize {
    let socket = socket2::SockRef::from(socket);
    if let Err(e) = socket.set_recv_buffer_size(wanted) {
        tracing::debug!(error = %e, wanted, "cannot set a UDP receive buffer");
    }
    socket.recv_buffer_size().unwrap_or(0)
}

/// Sets the Don't Fragment bit on what `socket` sends over IPv4 (`IP_PMTUDISC_PROBE`: DF set,
/// the kernel's path-MTU cache not consulted). Media datagrams
/// are sized below any path MTU by the peers (RTP under 1,200 bytes), and fragments of one are
/// worth nothing to a receiver. It also spares each datagram the kernel's IP identifier: Linux
/// gives a DF datagram of an unconnected socket the identifier 0 instead of drawing one from its
/// shared, hashed counters (`__ip_select_ident`, 2.8 % of the node's CPU at 100 subscribers).
/// An IPv6 socket is left as it is: IPv6 routers never fragment.
fn set_dont_fragment(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    if !matches!(socket.local_addr(), Ok(SocketAddr::V4(_))) {
        return;
    }
    let value: libc::c_int = libc::IP_PMTUDISC_PROBE;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int with its size, as IP_MTU_DISCOVER takes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "cannot set Don't Fragment on the media mux");
    }
}

fn config_io(e: io::Error) -> MediaError {
    MediaError::Config(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn mux_receive(socket: Arc<MuxSocket>, state: Arc<Mutex<MuxState>>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut held = hold::HeldDatagrams::default();
    let release = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(release);
    loop {
        let received = tokio::select! {
            biased;
            received = socket.recv_from(&mut buf) => received,
            () = &mut release, if !held.is_empty() => {
                held.release();
                continue;
            }
        };
        let (n, from) = match received {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors (e.g. port unreachable) surface here on some systems; keep going,
                // without spinning if the error persists.
                tracing::debug!(error = %e, "UDP mux receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let datagram = &buf[..n];
        let mut state = lock(&state);
        let Some(slot) = state.table.route(from, datagram) else {
            tracing::trace!(%from, len = n, "UDP mux: datagram for no peer");
            continue;
        };
        let closed = match state.sinks.get_mut(&slot) {
            Some(sink) => {
                sink.up |= matches!(datagram.first(), Some(128..=191));
                // Asked only for connections driven elsewhere: not for each publisher's packet.
                let can_wait = sink.driven_on.is_some() && sink.up && hold::can_wait(datagram);
                match &sink.driven_on {
                    // Held; or, when the connection has datagrams waiting, sent with them so that
                    // it reads its datagrams in order, and released at once unless it can wait.
                    Some(runtime) if can_wait || held.holds(slot) => {
                        let first = held.is_empty();
                        let datagram = (datagram.to_vec(), from);
                        let full = held.hold(slot, &sink.queue, runtime, datagram, tokio::time::Instant::now);
                        if full || !can_wait {
                            held.release();
                        } else if first && let Some(deadline) = held.deadline() {
                            release.as_mut().reset(deadline);
                        }
                        false
                    }
                    _ => match sink.queue.try_send((datagram.to_vec(), from)) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => false,
                        Err(mpsc::error::TrySendError::Closed(_)) => true,
                    },
                }
            }
            None => true,
        };
        if closed {
            state.table.unregister(slot);
            state.sinks.remove(&slot);
        }
    }
}

/// A peer connection's view of a shared mux socket.
#[derive(Debug)]
struct MuxedSocket {
    local: SocketAddr,
    slot: SlotId,
    socket: Arc<MuxSocket>,
    state: Arc<Mutex<MuxState>>,
    rx: Mutex<mpsc::Receiver<Datagram>>,
    noted: Mutex<HashSet<SocketAddr>>,
    path: Arc<MediaPath>,
}

impl std::fmt::Debug for MuxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxState").field("table", &self.table).finish()
    }
}

impl MuxedSocket {
    /// Records that this peer connection sends to `to`, so that the mux routes what comes back
    /// from `to` to it.
    fn note(&self, to: SocketAddr) {
        if lock(&self.noted).insert(to) {
            lock(&self.state).table.note_destination(self.slot, to);
        }
    }
}

impl Drop for MuxedSocket {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.table.unregister(self.slot);
        state.sinks.remove(&self.slot);
    }
}

impl AsyncUdpSocket for MuxedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn poll_send(&self, _: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let to = transmit.destination;
        self.note(to);
        self.path.sent(&self.socket, to, transmit.contents);
        match transmit.segment_size {
            Some(size) if size > 0 && size < transmit.contents.len() => {
                // GSO batch (never requested: max_gso_segments is 1); send what we can.
                for chunk in transmit.contents.chunks(size) {
                    let _ = self.socket.try_send_to(chunk, to);
                }
                Poll::Ready(Ok(transmit.contents.len()))
            }
            _ => match self.socket.try_send_to(transmit.contents, to) {
                // The send buffer is full: the datagram is lost, as on a full link (see
                // `MuxSocket`); ICE, DTLS and RTCP send theirs again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tracing::debug!(%to, len = transmit.contents.len(), "UDP mux send buffer full: datagram dropped");
                    Poll::Ready(Ok(transmit.contents.len()))
                }
                sent => Poll::Ready(sent),
            },
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        match lock(&self.rx).poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "UDP mux closed"))),
            Poll::Ready(Some((data, from))) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                let mut m = RecvMeta::default();
                m.addr = from;
                m.len = n;
                m.stride = n;
                *slot = m;
                Poll::Ready(Ok(1))
            }
        }
    }
}

/// Local host-candidate address (as the driver bound it) → the address to advertise.
#[derive(Debug, Default)]
pub(crate) struct AdvertisedAddrs(Mutex<HashMap<SocketAddr, SocketAddr>>);

impl AdvertisedAddrs {
    fn insert(&self, local: SocketAddr, advertised: SocketAddr) {
        lock(&self.0).insert(local, advertised);
    }

    /// The address to advertise for a local candidate at `local`.
    pub(crate) fn get(&self, local: SocketAddr) -> Option<SocketAddr> {
        lock(&self.0).get(&local).copied()
    }
}

/// Where a peer connection's RTP goes when the node encrypts and sends it itself (the fan-out,
/// [`crate::direct`]): the mux socket and the remote address of the connection's selected ICE
/// pair.
///
/// Learnt from the connection's own sends: the ICE agent sends DTLS, SRTP and SRTCP on the
/// selected pair only (STUN checks go to every pair), so the last non-STUN datagram a
/// connection's driver sent names the pair. It is known once DTLS has started, and follows a
/// change of pair at the connection's next RTCP (a sender report leaves every second). Empty in
/// range mode, where the connection's sockets are its own.
#[derive(Debug, Default)]
pub(crate) struct MediaPath(Mutex<Option<PathTo>>);

/// A socket and a destination: see [`MediaPath`].
#[derive(Clone, Debug)]
pub(crate) struct PathTo {
    pub(crate) socket: Arc<MuxSocket>,
    pub(crate) to: SocketAddr,
}

impl MediaPath {
    /// The path, once the connection has sent DTLS or SRTP.
    pub(crate) fn get(&self) -> Option<PathTo> {
        lock(&self.0).clone()
    }

    /// Sets the path (tests of what is sent on it).
    #[cfg(test)]
    pub(crate) fn set(&self, socket: Arc<MuxSocket>, to: SocketAddr) {
        *lock(&self.0) = Some(PathTo { socket, to });
    }

    /// The connection sent `datagram` to `to` on `socket`: a datagram other than STUN names the
    /// selected pair (RFC 7983: DTLS is 20–63, RTP and RTCP 128–191 in the first byte).
    fn sent(&self, socket: &Arc<MuxSocket>, to: SocketAddr, datagram: &[u8]) {
        if !matches!(datagram.first(), Some(20..=63 | 128..=191)) {
            return;
        }
        let mut path = lock(&self.0);
        if path.as_ref().is_none_or(|p| p.to != to || !Arc::ptr_eq(&p.socket, socket)) {
            *path = Some(PathTo { socket: socket.clone(), to });
        }
    }
}

/// The runtime of one peer connection: tokio, with the UDP sockets swapped as described in the
/// module docs, and its tasks (the driver: ICE, DTLS, RTCP, timers) spawned on `tasks` when
/// given, else on the runtime that builds the connection.
pub(crate) struct EndpointRuntime {
    transport: Arc<Transport>,
    ufrag: String,
    advertised: Arc<AdvertisedAddrs>,
    path: Arc<MediaPath>,
    tasks: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for EndpointRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRuntime").field("ufrag", &self.ufrag).finish()
    }
}

impl EndpointRuntime {
    pub(crate) fn new(
        transport: Arc<Transport>,
        ufrag: String,
        advertised: Arc<AdvertisedAddrs>,
        path: Arc<MediaPath>,
        tasks: Option<tokio::runtime::Handle>,
    ) -> Self {
        Self { transport, ufrag, advertised, path, tasks }
    }
}

/// A task spawned on an [`EndpointRuntime`]'s own `tasks` runtime.
struct SpawnedTask(tokio::task::JoinHandle<()>);

impl JoinHandle for SpawnedTask {
    fn detach(&self) {
        // A tokio task detaches when its handle is dropped.
    }

    fn abort(&self) {
        self.0.abort();
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Runtime for EndpointRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        match &self.tasks {
            Some(runtime) => Box::new(SpawnedTask(runtime.spawn(future))),
            None => TokioRuntime.spawn(future),
        }
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = socket.local_addr()?;
        let replacement = self.transport.replace_socket(local, &self.ufrag, &self.path, self.tasks.as_ref())?;
        drop(socket);
        self.advertised.insert(local, replacement.advertised);
        Ok(replacement.socket)
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.connect_tcp(remote_addr).await })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.resolve_host(host).await })
    }

    /// The connection's timers, with a distant deadline moved to the node's timer grid
    /// ([`crate::timer_grid`]): the drivers' one-second timers (RTCP reports, the ICE agent's
    /// consent tick) of every connection then fire in a few shared wake-ups a second.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        // tokio's clock, as `tokio::time::sleep` reads it.
        let now = tokio::time::Instant::now().into_std();
        Box::pin(tokio::time::sleep_until(crate::timer_grid::coalesced_deadline(now, duration).into()))
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn name(&self) -> &'static str {
        "openvidu-media"
    }
}
