//! The fan-out's sends: the datagrams of many peer connections, queued while one packet is
//! forwarded to every subscriber, then sent with one `sendmmsg` per socket instead of one
//! system call (and one driver task wake) per subscriber. The datagrams are written one after
//! the other into one buffer that the batch keeps from one packet to the next, so that queuing
//! one allocates nothing once the buffer has grown to a fan-out's size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::MuxSocket;

/// One datagram waiting for [`SendBatch::flush`]: `datagrams[start..end]` of its batch.
struct Queued {
    socket: Arc<MuxSocket>,
    to: SocketAddr,
    start: usize,
    end: usize,
}

/// Datagrams queued for sending, and the scratch space a packet is marshalled into before it is
/// encrypted for each of them.
#[derive(Default)]
pub(crate) struct SendBatch {
    queued: Vec<Queued>,
    /// The queued datagrams, back to back (kept to reuse its allocation).
    datagrams: BytesMut,
    /// A plain RTP packet, marshalled (kept to reuse its allocation).
    scratch: Vec<u8>,
    /// When the datagrams queued now are sent, read once per batch.
    now: Option<Instant>,
}

/// Datagrams per `sendmmsg` call (the kernel's limit is `UIO_MAXIOV`, 1024); fewer in tests, so
/// that a run longer than one call fits in a test receiver's socket buffer.
const MAX_PER_CALL: usize = if cfg!(test) { 16 } else { 256 };

impl SendBatch {
    /// When the datagrams queued until the next [`flush`](Self::flush) are sent (the clock is read
    /// once per batch, not once per datagram).
    pub(crate) fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }

    /// Queues for `to` on `socket` the datagram `write` appends to the buffer it is given (the
    /// second argument), with the batch's scratch space (the first, left as the last call left
    /// it) to prepare it in. On an error nothing is queued, and what `write` appended is dropped.
    pub(crate) fn queue_with<E>(
        &mut self,
        socket: Arc<MuxSocket>,
        to: SocketAddr,
        write: impl FnOnce(&mut Vec<u8>, &mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.datagrams.len();
        match write(&mut self.scratch, &mut self.datagrams) {
            Ok(()) => {
                self.queued.push(Queued { socket, to, start, end: self.datagrams.len() });
                Ok(())
            }
            Err(e) => {
                self.datagrams.truncate(start);
                Err(e)
            }
        }
    }

    /// Queues a copy of `data` for `to` on `socket`.
    #[cfg(test)]
    pub(crate) fn push(&mut self, socket: Arc<MuxSocket>, to: SocketAddr, data: &[u8]) {
        let queued: Result<(), std::convert::Infallible> = self.queue_with(socket, to, |_, datagrams| {
            datagrams.extend_from_slice(data);
            Ok(())
        });
        let Ok(()) = queued;
    }

    /// How many datagrams are queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
    }

    /// Sends everything queued, without waiting: a datagram the socket cannot take now (its
    /// send buffer is full) is lost, as it would be on the wire. Returns how many were lost.
    pub(crate) fn flush(&mut self) -> usize {
        let mut lost = 0;
        let mut start = 0;
        while start < self.queued.len() {
            let socket = &self.queued[start].socket;
            let end = self.queued[start..]
                .iter()
                .position(|q| !Arc::ptr_eq(&q.socket, socket))
                .map_or(self.queued.len(), |n| start + n);
            for run in self.queued[start..end].chunks(MAX_PER_CALL) {
                lost += send_run(socket, run, &self.datagrams);
            }
            start = end;
        }
        self.queued.clear();
        self.datagrams.clear();
        self.now = None;
        if lost > 0 {
            tracing::debug!(lost, "fan-out: datagrams the socket could not take");
        }
        lost
    }
}

/// The arrays a `sendmmsg` call reads, kept from one call to the next so that a flush allocates
/// nothing (one set per thread, emptied before each call: between calls they may still point at
/// datagrams already sent, and are never read then).
#[cfg(target_os = "linux")]
#[derive(Default)]
struct MmsgScratch {
    addrs: Vec<socket2::SockAddr>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

#[cfg(target_os = "linux")]
impl MmsgScratch {
    fn clear(&mut self) {
        self.addrs.clear();
        self.iovecs.clear();
        self.headers.clear();
    }
}

#[cfg(target_os = "linux")]
thread_local! {
    static MMSG_SCRATCH: std::cell::RefCell<MmsgScratch> = std::cell::RefCell::default();
}

/// Sends `run` (datagrams of one socket, in `datagrams`) with `sendmmsg`; returns how many were
/// not sent.
#[cfg(target_os = "linux")]
fn send_run(socket: &MuxSocket, run: &[Queued], datagrams: &[u8]) -> usize {
    MMSG_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            // Emptied first: what an earlier call left (one that unwound included) points at
            // datagrams already sent and freed.
            scratch.clear();
            send_run_with(socket, run, datagrams, &mut scratch)
        }
        // Not reentrant; should a flush ever run inside another on this thread, it pays for
        // arrays of its own.
        Err(_) => send_run_with(socket, run, datagrams, &mut MmsgScratch::default()),
    })
}

/// [`send_run`] with the arrays of `scratch` (empty when called).
#[cfg(target_os = "linux")]
fn send_run_with(socket: &MuxSocket, run: &[Queued], datagrams: &[u8], scratch: &mut MmsgScratch) -> usize {
    use std::os::fd::AsRawFd;

    let MmsgScratch { addrs, iovecs, headers } = scratch;
    addrs.extend(run.iter().map(|q| socket2::SockAddr::from(q.to)));
    iovecs.extend(run.iter().map(|q| {
        let data = &datagrams[q.start..q.end];
        libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() }
    }));
    headers.extend(addrs.iter().zip(iovecs.iter_mut()).map(|(addr, iov)| {
        // SAFETY: `mmsghdr` is plain old data; all-zero is a valid (empty) value.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        header.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
        header.msg_hdr.msg_namelen = addr.len();
        header.msg_hdr.msg_iov = iov;
        header.msg_hdr.msg_iovlen = 1;
        header
    }));
    let fd = socket.as_raw_fd();
    let mut done = 0;
    let mut lost = 0;
    while done < headers.len() {
        let rest = &mut headers[done..];
        let count = libc::c_uint::try_from(rest.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `fd` is the open socket `socket` owns; every header points at an address in
        // `addrs` and one iovec in `iovecs` over a datagram in `datagrams`, all alive and unmoved
        // (none of the three arrays grows after `headers` is made) until this function returns.
        let sent = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), count, 0) };
        if let Ok(sent @ 1..) = usize::try_from(sent) {
            done += sent;
            continue;
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => {}
            std::io::ErrorKind::WouldBlock => {
                lost += headers.len() - done;
                break;
            }
            _ => {
                // The first datagram was refused (an unreachable destination, say): skip it.
                tracing::trace!(to = %run[done].to, %error, "fan-out send failed");
                lost += 1;
                done += 1;
            }
        }
    }
    lost
}

/// Sends `run` one datagram at a time (no `sendmmsg` here).
#[cfg(not(target_os = "linux"))]
fn send_run(socket: &MuxSocket, run: &[Queued], datagrams: &[u8]) -> usize {
    run.iter().filter(|q| socket.try_send_to(&datagrams[q.start..q.end], q.to).is_err()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn receiver() -> (tokio::net::UdpSocket, SocketAddr) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        (socket, addr)
    }

    fn sender() -> Arc<MuxSocket> {
        Arc::new(MuxSocket::loopback())
    }

    async fn recv(socket: &tokio::net::UdpSocket, buf: &mut [u8]) -> usize {
        let received = tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv(buf)).await;
        received.expect("a datagram within 5 s").expect("recv")
    }

    #[tokio::test]
    async fn a_flush_delivers_every_datagram_to_its_destination_in_order() {
        let (sender, other) = (sender(), sender());
        let ((a, a_addr), (b, b_addr)) = (receiver().await, receiver().await);
        let mut batch = SendBatch::default();
        // A run longer than one call, then another socket, then the first one again.
        let to_b = |i: &u16| (40..50).contains(i);
        for i in 0..60u16 {
            let (socket, to) = if to_b(&i) { (&other, b_addr) } else { (&sender, a_addr) };
            batch.push(socket.clone(), to, &i.to_be_bytes());
        }
        assert_eq!(batch.len(), 60);
        assert_eq!(batch.flush(), 0);
        assert_eq!(batch.len(), 0);
        let mut buf = [0u8; 16];
        let expected_a: Vec<u16> = (0..60).filter(|i| !to_b(i)).collect();
        let expected_b: Vec<u16> = (0..60).filter(to_b).collect();
        for (socket, expected) in [(&a, expected_a), (&b, expected_b)] {
            for i in expected {
                let n = recv(socket, &mut buf).await;
                assert_eq!(&buf[..n], &i.to_be_bytes()[..]);
            }
        }
    }

    #[tokio::test]
    async fn a_failed_write_queues_nothing_and_the_next_batch_reuses_the_buffer() {
        let sender = sender();
        let (a, a_addr) = receiver().await;
        let mut batch = SendBatch::default();
        let fill = |batch: &mut SendBatch| {
            for i in 0..20u8 {
                batch.push(sender.clone(), a_addr, &[i; 200]);
            }
            let failed = batch.queue_with(sender.clone(), a_addr, |scratch, datagrams| {
                scratch.extend_from_slice(b"prepared");
                datagrams.extend_from_slice(b"half written");
                Err("refused")
            });
            assert_eq!(failed, Err("refused"));
            assert_eq!(batch.len(), 20);
            assert_eq!(batch.datagrams.len(), 20 * 200, "what the failed write appended is dropped");
        };
        fill(&mut batch);
        let buffer = (batch.datagrams.as_ptr(), batch.datagrams.capacity());
        assert_eq!(batch.flush(), 0);
        assert!(batch.datagrams.is_empty());
        fill(&mut batch);
        assert_eq!(
            (batch.datagrams.as_ptr(), batch.datagrams.capacity()),
            buffer,
            "the second batch is written where the first was, without allocating"
        );
        assert_eq!(batch.flush(), 0);
        let mut buf = [0u8; 256];
        for i in (0..20u8).chain(0..20) {
            let n = recv(&a, &mut buf).await;
            assert_eq!(&buf[..n], &[i; 200][..]);
        }
    }

    #[tokio::test]
    async fn a_refused_destination_costs_only_its_own_datagram() {
        let sender = sender();
        let (a, a_addr) = receiver().await;
        let mut batch = SendBatch::default();
        batch.push(sender.clone(), a_addr, b"one");
        // An IPv6 destination on an IPv4 socket: refused by the kernel.
        batch.push(sender.clone(), "[::1]:9".parse().expect("addr"), b"lost");
        batch.push(sender.clone(), a_addr, b"two");
        assert_eq!(batch.flush(), 1);
        let mut buf = [0u8; 16];
        for expected in [&b"one"[..], &b"two"[..]] {
            let n = recv(&a, &mut buf).await;
            assert_eq!(&buf[..n], expected);
        }
    }
}
