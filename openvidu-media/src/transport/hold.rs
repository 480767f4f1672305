//! Datagrams that can wait a little, held by the mux and handed over together.
//!
//! The mux socket is read on the media thread, while the subscribers' connections are driven on
//! the process's runtime threads. Each datagram the mux put in such a connection's queue woke a
//! runtime thread: at 300 subscribers, about 480 wake-ups a second for what the subscribers
//! send (a receiver report per track every second, a consent check every 2.5 s, the answers to
//! the node's checks), each preempting the media thread when both share a core, and each
//! costing some 30 µs of CPU for the sleep and wake alone on the machines measured.
//!
//! None of those datagrams is urgent: a receiver report or sender report alone in its datagram
//! feeds statistics, and a consent check of a connection that is up has seconds to be answered.
//! [`HeldDatagrams`] keeps them for up to [`HOLD`] and then hands the whole batch to the
//! connections' runtime in one task, which puts each datagram in its connection's queue from
//! there: one wake-up of a runtime thread for the batch. Anything else for such a connection
//! (feedback a sender acts on: NACK, PLI, FIR, REMB, transport-wide congestion control; DTLS;
//! and every STUN message while the connection is still coming up) goes at once, as before:
//! straight into its connection's queue, or, when the batch holds datagrams of the same
//! connection, with the batch, released at once with it last, so that each connection still
//! receives its datagrams in their order. (A first version sent everything that cannot wait
//! through the batch whenever one was pending: the handshakes of connections coming up beside
//! connections that were up took a second task hop per datagram, on a runtime busy with those
//! handshakes. In the HA bench's media-node rebuild, 180 subscriptions at once, the last one
//! came back after 2.8 to 3.4 s in five runs, against 2.1 to 2.7 s without the hold and 1.7 to
//! 2.4 s with this version.)

use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Datagram, STUN_MAGIC_COOKIE, SlotId};

/// The longest a datagram waits in a [`HeldDatagrams`]: the measured round-trip time of a
/// consent check or of a receiver report (RFC 3550's LSR/DLSR) grows by at most this much.
pub(crate) const HOLD: Duration = Duration::from_millis(20);

/// A batch this large is handed over without waiting for [`HOLD`] to pass.
const MAX_HELD: usize = 256;

/// What an SRTCP packet carries after its RTCP packets: the E flag and index (4 bytes) and the
/// authentication tag, 10 bytes with HMAC-SHA1 (both of RFC 5764's AES-CM profiles, the
/// 32-bit one included, use an 80-bit tag for SRTCP) or 16 bytes with AES-GCM (RFC 7714).
const SRTCP_TRAILERS: [usize; 2] = [4 + 10, 4 + 16];

/// Whether `datagram`, for a connection that is up, can wait up to [`HOLD`]: a STUN Binding
/// request or success response (the consent checks of RFC 7675), or an SRTCP packet that holds
/// one sender or receiver report and nothing else.
///
/// SRTCP leaves the first RTCP packet's header (8 bytes) in the clear; when the length it
/// gives, plus one of the trailers, is the datagram's, no second packet (feedback, SDES) hides
/// in the encrypted part. Every RTCP packet is a multiple of 4 bytes long, so neither trailer
/// (14 or 20 bytes) can be mistaken for the other plus a packet.
pub(crate) fn can_wait(datagram: &[u8]) -> bool {
    match datagram.first() {
        Some(0..=3) => is_binding_check(datagram),
        Some(128..=191) => is_lone_report(datagram),
        _ => false,
    }
}

fn is_binding_check(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[4..8] == STUN_MAGIC_COOKIE
        && matches!(u16::from_be_bytes([datagram[0], datagram[1]]), 0x0001 | 0x0101)
}

fn is_lone_report(datagram: &[u8]) -> bool {
    const SENDER_REPORT: u8 = 200;
    const RECEIVER_REPORT: u8 = 201;
    if datagram.len() < 8 || !matches!(datagram[1], SENDER_REPORT | RECEIVER_REPORT) {
        return false;
    }
    let first = (usize::from(u16::from_be_bytes([datagram[2], datagram[3]])) + 1) * 4;
    datagram.len().checked_sub(first).is_some_and(|trailer| SRTCP_TRAILERS.contains(&trailer))
}

/// Datagrams held for connections driven on another runtime (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct HeldDatagrams {
    batch: Vec<(SlotId, mpsc::Sender<Datagram>, Datagram)>,
    runtime: Option<Handle>,
    deadline: Option<Instant>,
}

impl HeldDatagrams {
    /// When the batch must be handed over; `None` while nothing is held.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Whether the batch holds a datagram of the connection `slot`.
    pub(crate) fn holds(&self, slot: SlotId) -> bool {
        self.batch.iter().any(|(held, _, _)| *held == slot)
    }

    /// Holds `datagram` for the connection `slot`, whose queue is `sink`, driven on `runtime`. The first
    /// datagram of a batch sets its deadline, [`HOLD`] from `now()`. Returns whether the batch is
    /// full, and should be released now.
    pub(crate) fn hold(
        &mut self,
        slot: SlotId,
        sink: &mpsc::Sender<Datagram>,
        runtime: &Handle,
        datagram: Datagram,
        now: impl FnOnce() -> Instant,
    ) -> bool {
        if self.batch.is_empty() {
            self.deadline = Some(now() + HOLD);
            self.runtime = Some(runtime.clone());
        }
        self.batch.push((slot, sink.clone(), datagram));
        self.batch.len() >= MAX_HELD
    }

    /// Hands everything held to the connections' runtime: one task there puts each datagram in
    /// its connection's queue, in the order they were held. A full queue drops the datagram, as
    /// the mux does when it sends directly.
    pub(crate) fn release(&mut self) {
        self.deadline = None;
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let batch = std::mem::take(&mut self.batch);
        // On a runtime that is shutting down the task is dropped unrun, and the datagrams with it.
        drop(runtime.spawn(async move {
            for (_, sink, datagram) in batch {
                let _ = sink.try_send(datagram);
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn binding(msg_type: u16) -> Vec<u8> {
        let mut m = msg_type.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0, 0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m
    }

    /// An RTCP packet of `words` 32-bit words after its header's first word.
    fn rtcp(packet_type: u8, words: u16) -> Vec<u8> {
        let mut p = vec![0x81, packet_type];
        p.extend_from_slice(&words.to_be_bytes());
        p.resize(usize::from(words + 1) * 4, 0);
        p
    }

    fn srtcp(packets: &[Vec<u8>], trailer: usize) -> Vec<u8> {
        let mut d = packets.concat();
        d.resize(d.len() + trailer, 0xAA);
        d
    }

    #[test]
    fn consent_checks_and_lone_reports_can_wait() {
        assert!(can_wait(&binding(0x0001)), "Binding request");
        assert!(can_wait(&binding(0x0101)), "Binding success response");
        let receiver_report = rtcp(201, 7); // one report block
        let sender_report = rtcp(200, 12);
        for trailer in SRTCP_TRAILERS {
            assert!(can_wait(&srtcp(std::slice::from_ref(&receiver_report), trailer)), "RR, trailer {trailer}");
            assert!(can_wait(&srtcp(std::slice::from_ref(&sender_report), trailer)), "SR, trailer {trailer}");
        }
    }

    #[test]
    fn feedback_handshakes_and_media_do_not_wait() {
        assert!(!can_wait(&binding(0x0111)), "Binding error response");
        assert!(!can_wait(&binding(0x0003)), "TURN Allocate");
        assert!(!can_wait(&[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "DTLS");
        let rtp = {
            let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
            p.resize(1000, 0);
            p
        };
        assert!(!can_wait(&rtp), "RTP");
        let receiver_report = rtcp(201, 7);
        let smallest = rtcp(203, 0); // a BYE of no source: 4 bytes
        let pli = rtcp(206, 2);
        let nack = rtcp(205, 3);
        for trailer in SRTCP_TRAILERS {
            assert!(!can_wait(&srtcp(std::slice::from_ref(&pli), trailer)), "PLI alone, trailer {trailer}");
            assert!(!can_wait(&srtcp(std::slice::from_ref(&nack), trailer)), "NACK alone, trailer {trailer}");
            for second in [&smallest, &pli, &nack] {
                let compound = srtcp(&[receiver_report.clone(), second.clone()], trailer);
                assert!(!can_wait(&compound), "RR + PT {}, trailer {trailer}", second[1]);
            }
        }
        assert!(!can_wait(&receiver_report[..6]), "cut short");
        assert!(!can_wait(&[]), "empty");
    }

    #[test]
    fn a_release_delivers_the_batch_in_order_from_the_connections_runtime() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let ((a, mut a_rx), (b, mut b_rx)) = (mpsc::channel(8), mpsc::channel(8));
        let mut held = HeldDatagrams::default();
        assert!(held.is_empty() && held.deadline().is_none());
        let start = Instant::now();
        assert!(!held.hold(1, &a, runtime.handle(), (vec![1], from), || start));
        assert_eq!(held.deadline(), Some(start + HOLD), "the first datagram sets the deadline");
        assert!(!held.hold(2, &b, runtime.handle(), (vec![2], from), || unreachable!("set already")));
        assert!(!held.hold(1, &a, runtime.handle(), (vec![3], from), || unreachable!("set already")));
        assert!(held.holds(1) && held.holds(2) && !held.holds(3));
        assert!(a_rx.try_recv().is_err(), "nothing delivered before the release");
        held.release();
        assert!(held.is_empty() && held.deadline().is_none() && !held.holds(1));
        let received = runtime.block_on(async {
            let first = a_rx.recv().await.expect("a").0;
            let second = a_rx.recv().await.expect("a").0;
            let other = b_rx.recv().await.expect("b").0;
            (first, second, other)
        });
        assert_eq!(received, (vec![1], vec![3], vec![2]));
    }

    #[test]
    fn a_full_batch_asks_to_be_released() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let (sink, _rx) = mpsc::channel(MAX_HELD);
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mut held = HeldDatagrams::default();
        let full = (0..MAX_HELD)
            .map(|_| held.hold(1, &sink, runtime.handle(), (vec![0], from), Instant::now))
            .collect::<Vec<_>>();
        assert_eq!(full.iter().filter(|f| **f).count(), 1);
        assert_eq!(full.last(), Some(&true));
    }
}
