//! When each received RTP packet reached the subscription's socket: the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`, which the webrtc crate's UDP layer turns on and reports in
//! [`RecvMeta::timestamp`]), recorded by SSRC and sequence number from the packet's clear SRTP
//! header.
//!
//! The latency a subscription reads when its track hands it a packet also holds the time the
//! packet waited in this process: for its peer connection's driver to be scheduled, to be
//! decrypted, for the track's reader. With hundreds of bots in one process on a loaded machine
//! that wait is most of the figure; the arrival time at the socket leaves it out, which makes
//! "send → socket" the forwarding latency the server and the network added.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, TokioRuntime,
    Transmit,
};

/// Arrivals remembered per subscription: a ring indexed by sequence number, far more than the
/// packets a track's reader can be behind.
const SLOTS: usize = 2048;

/// The arrival times of a subscription's recent RTP packets, in microseconds since the UNIX
/// epoch (the clock of the synthetic payloads' send timestamps).
#[derive(Debug)]
pub(crate) struct Arrivals {
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    ssrc: u32,
    seq: u16,
    micros: u64,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self { slots: Mutex::new(vec![Slot::default(); SLOTS]) }
    }
}

impl Arrivals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // Plain stores of `Copy` values: a panic elsewhere leaves the ring usable.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn index(ssrc: u32, seq: u16) -> usize {
        // The sequence number spreads consecutive packets; the SSRC separates the tracks.
        (usize::from(seq) ^ (ssrc as usize).wrapping_mul(0x9E37)) % SLOTS
    }

    /// Records that packet `seq` of `ssrc` arrived at `micros`.
    fn record(&self, ssrc: u32, seq: u16, micros: u64) {
        self.lock()[Self::index(ssrc, seq)] = Slot { ssrc, seq, micros };
    }

    /// Records the RTP packets among the datagrams of `data` (`stride` bytes each, the last one
    /// maybe shorter) as arrived at `at`.
    fn record_datagrams(&self, data: &[u8], stride: usize, at: Duration) {
        let micros = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
        for datagram in data.chunks(stride.max(1)) {
            if let Some((ssrc, seq)) = rtp_key(datagram) {
                self.record(ssrc, seq, micros);
            }
        }
    }

    /// When packet `seq` of `ssrc` arrived, if it is still remembered.
    pub(crate) fn arrived(&self, ssrc: u32, seq: u16) -> Option<u64> {
        let slot = self.lock()[Self::index(ssrc, seq)];
        (slot.micros != 0 && slot.ssrc == ssrc && slot.seq == seq).then_some(slot.micros)
    }
}

/// The SSRC and sequence number of an SRTP packet (its header is in the clear); `None` for
/// anything else on the socket: STUN, DTLS (RFC 7983: an RTP or RTCP packet's first byte is
/// 128–191) and RTCP (RFC 5761: packet types 192–223 in the second byte).
fn rtp_key(datagram: &[u8]) -> Option<(u32, u16)> {
    let header = datagram.get(..12)?;
    if !(128..=191).contains(&header[0]) || (192..=223).contains(&header[1]) {
        return None;
    }
    let seq = u16::from_be_bytes([header[2], header[3]]);
    let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    Some((ssrc, seq))
}

/// The tokio runtime, with each UDP socket it wraps recording RTP arrivals into `arrivals`.
#[derive(Debug)]
pub(crate) struct ArrivalRuntime {
    arrivals: Arc<Arrivals>,
}

impl ArrivalRuntime {
    pub(crate) fn new(arrivals: Arc<Arrivals>) -> Self {
        Self { arrivals }
    }
}

impl Runtime for ArrivalRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = TokioRuntime.wrap_udp_socket(socket)?;
        Ok(Arc::new(ArrivalSocket { inner, arrivals: self.arrivals.clone() }))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }
}

/// A tokio UDP socket that records the arrival of the RTP packets it receives.
#[derive(Debug)]
struct ArrivalSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    arrivals: Arc<Arrivals>,
}

impl AsyncUdpSocket for ArrivalSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let received = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = received {
            for (buf, m) in bufs.iter().zip(meta.iter()).take(n) {
                // No kernel timestamp (another platform): nothing recorded, the caller's own
                // clock is all there is.
                if let (Some(at), Some(data)) = (m.timestamp, buf.get(..m.len)) {
                    self.arrivals.record_datagrams(data, m.stride, at);
                }
            }
        }
        received
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xAB; 20]);
        p
    }

    #[test]
    fn only_rtp_is_keyed() {
        assert_eq!(rtp_key(&rtp(0xDEAD_BEEF, 513)), Some((0xDEAD_BEEF, 513)));
        let mut rtcp = rtp(1, 2);
        rtcp[1] = 200; // sender report
        assert_eq!(rtp_key(&rtcp), None);
        assert_eq!(rtp_key(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0]), None); // STUN
        assert_eq!(rtp_key(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None); // DTLS
        assert_eq!(rtp_key(&[0x80, 96, 0, 1]), None); // cut short
    }

    #[test]
    fn arrivals_are_found_by_ssrc_and_sequence_until_overwritten() {
        let a = Arrivals::default();
        a.record(7, 100, 1_000);
        a.record(8, 100, 2_000);
        assert_eq!(a.arrived(7, 100), Some(1_000));
        assert_eq!(a.arrived(8, 100), Some(2_000));
        assert_eq!(a.arrived(7, 101), None);
        // A packet a whole ring later takes the slot: the old one is forgotten, not misread.
        a.record(7, 100 + SLOTS as u16, 3_000);
        assert_eq!(a.arrived(7, 100), None);
        assert_eq!(a.arrived(7, 100 + SLOTS as u16), Some(3_000));
    }

    #[test]
    fn coalesced_datagrams_are_split_by_stride() {
        let a = Arrivals::default();
        let (one, two) = (rtp(5, 1), rtp(5, 2));
        let mut both = one.clone();
        both.extend_from_slice(&two[..two.len() - 3]); // the last one shorter
        a.record_datagrams(&both, one.len(), Duration::from_micros(42));
        assert_eq!((a.arrived(5, 1), a.arrived(5, 2)), (Some(42), Some(42)));
    }

    #[tokio::test]
    async fn a_wrapped_socket_records_the_kernel_arrival_time() {
        let arrivals = Arc::new(Arrivals::default());
        let runtime = ArrivalRuntime::new(arrivals.clone());
        let socket = runtime.wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind")).expect("wrapped");
        let to = socket.local_addr().expect("addr");
        let before = super::super::synthetic::now_micros();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender.send_to(&rtp(0x1234, 9), to).expect("sent");

        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(n, 32);
        let at = arrivals.arrived(0x1234, 9).expect("the arrival was recorded (Linux reports SO_TIMESTAMPNS)");
        let after = super::super::synthetic::now_micros();
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    }
}
