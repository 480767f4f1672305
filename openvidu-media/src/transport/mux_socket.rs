//! The node's shared UDP socket, watched for reading only.
//!
//! A `tokio::net::UdpSocket` is registered with the reactor for reading and writing, edge-
//! triggered. On Linux every datagram sent frees its buffer space as soon as the kernel has
//! passed it on (at once on loopback), and each time that raises a new "writable" edge: the
//! media thread's next `epoll_wait` returned at once with it, nobody waited for it, and the
//! thread went round its loop and into `epoll_wait` again. With one send per forwarded packet,
//! that was a second wake-up of the media thread per packet (`strace` of a node forwarding one
//! stream: two `epoll_wait` per packet, every other one returning only `EPOLLOUT`).
//!
//! [`MuxSocket`] registers the socket for reading alone. Sends never wait: a datagram the socket
//! cannot take at once (its send buffer is full) is lost, as it would be on a full link. The
//! fan-out's sends already worked so ([`SendBatch`](super::SendBatch)); the peer connections'
//! own sends (ICE, DTLS, RTCP) are retransmitted or repeated by their protocols.
//!
//! Unix only (`AsyncFd`), as the node's batched sends are Linux's `sendmmsg`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A non-blocking UDP socket registered with the tokio reactor for reading only (see the module
/// docs).
#[derive(Debug)]
pub(crate) struct MuxSocket {
    fd: AsyncFd<std::net::UdpSocket>,
}

impl MuxSocket {
    /// Registers `socket` (made non-blocking) for reading. Must run inside a tokio runtime.
    pub(crate) fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        // SAFETY: the `UdpSocket` owns its descriptor, which stays open and the same until the
        // `AsyncFd` (which owns the socket, and is never taken apart) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Waits for a datagram; returns its length (cut to `buf`) and sender.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|socket| socket.get_ref().recv_from(buf)) {
                Ok(received) => return received,
                // Read to the end: the readiness was cleared, wait for the next datagram.
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends `data` to `to` without waiting: `WouldBlock` when the send buffer is full.
    pub(crate) fn try_send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.fd.get_ref().send_to(data, to)
    }

    /// The address the socket is bound to.
    #[cfg(test)]
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// A socket on a free loopback port, for tests.
    #[cfg(test)]
    pub(crate) fn loopback() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        Self::new(socket).expect("registered")
    }
}

impl AsRawFd for MuxSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for MuxSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn datagrams_go_both_ways_and_a_read_waits_for_the_next_one() {
        let (a, b) = (MuxSocket::loopback(), MuxSocket::loopback());
        let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        assert_eq!(a.try_send_to(b"one", b_addr).expect("sent"), 3);
        let mut buf = [0u8; 16];
        assert_eq!(b.recv_from(&mut buf).await.expect("received"), (3, a_addr));
        assert_eq!(&buf[..3], b"one");

        // Nothing queued: the read waits until the next datagram arrives.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let got = b.recv_from(&mut buf).await.map(|(n, from)| (buf[..n].to_vec(), from));
            (b, got)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished());
        a.try_send_to(b"two", b_addr).expect("sent");
        let (_b, got) = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("in time").expect("joined");
        assert_eq!(got.expect("received"), (b"two".to_vec(), a_addr));
    }

    /// The point of the type: a send does not wake the runtime's thread. The runtime waits for
    /// one event while another thread sends 20 datagrams on the socket; its thread stays parked.
    /// A `tokio::net::UdpSocket` (registered for writing too) in place of the `MuxSocket` woke it
    /// once per datagram: 22 parks here.
    #[test]
    fn a_send_does_not_wake_the_runtime() {
        const SENDS: usize = 20;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let metrics = runtime.handle().metrics();
        let parks = runtime.block_on(async {
            let socket = Arc::new(MuxSocket::loopback());
            // Not registered with the runtime: what it receives wakes nothing.
            let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let to = sink.local_addr().expect("addr");
            let (done, sent) = tokio::sync::oneshot::channel();
            let before = metrics.worker_park_count(0);
            std::thread::spawn(move || {
                for _ in 0..SENDS {
                    let _ = socket.try_send_to(&[0u8; 100], to);
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = done.send(());
            });
            let _ = sent.await;
            metrics.worker_park_count(0) - before
        });
        assert!(parks <= 5, "the runtime's thread parked {parks} times while {SENDS} datagrams were sent");
    }
}
