//! The fan-out's own sending, in mux mode: a subscriber's RTP is encrypted with an SRTP context
//! made from its connection's keys (`PeerConnection::new_local_srtp_context`, our patch of the
//! `webrtc` crate) and queued on the fan-out's batch for the connection's ICE path
//! ([`MediaPath`]), without a pass through the connection's pipeline (its lock, interceptors and
//! handlers: three quarters of what a forwarded packet cost before).
//!
//! What the connection's pipeline did for these packets is done here instead: the counters of
//! its sender reports ([`DirectLeg::sender_report`]), and retransmissions, from the track's
//! history (`Forwarders::retransmit`). The connection's own SRTP context never encrypts these
//! SSRCs; its RTCP (SRTCP, with an index of its own) still goes through it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, MarshalSize};
use rtc::shared::time::SystemInstant;
use rtc::srtp::context::Context;

use crate::endpoint::lock;
use crate::forward::{Handed, RtpSink, prefetch};
use crate::seq::is_after;
use crate::transport::{MediaPath, SendBatch};

/// One subscriber connection's sending: its SRTP context, once the handshake is done, and its
/// ICE path. Shared by the connection's legs (audio and video).
pub(crate) struct DirectRtp {
    srtp: Mutex<Option<Context>>,
    path: Arc<MediaPath>,
}

impl DirectRtp {
    /// Sends on `path`, once a context is [`install`](Self::install)ed.
    pub(crate) fn new(path: Arc<MediaPath>) -> Arc<Self> {
        Arc::new(Self { srtp: Mutex::new(None), path })
    }

    /// Encrypts with `context` from now on.
    pub(crate) fn install(&self, context: Context) {
        *lock(&self.srtp) = Some(context);
    }

    /// Marshals, encrypts and queues `packet` on `batch`: marshalled into the batch's scratch
    /// space, encrypted into its datagram buffer, so that nothing is allocated per packet.
    fn send(&self, packet: &rtp::Packet, batch: &mut SendBatch) -> Handed {
        let Some(path) = self.path.get() else {
            return Handed::Unbound;
        };
        let queued = batch.queue_with(path.socket, path.to, |plain, datagrams| {
            plain.resize(packet.marshal_size(), 0);
            packet.marshal_to(plain).map_err(Unsent::Marshal)?;
            let mut srtp = lock(&self.srtp);
            let context = srtp.as_mut().ok_or(Unsent::NoKeys)?;
            context.encrypt_rtp_with_header_into(plain, &packet.header, datagrams).map_err(Unsent::Encrypt)
        });
        match queued {
            Ok(()) => Handed::Queued,
            Err(Unsent::NoKeys) => Handed::Unbound,
            Err(Unsent::Marshal(e)) => {
                tracing::debug!(error = %e, "forwarded RTP packet could not be marshalled");
                Handed::Unbound
            }
            Err(Unsent::Encrypt(e)) => {
                tracing::debug!(error = %e, "forwarded RTP packet could not be encrypted");
                Handed::Unbound
            }
        }
    }
}

/// Why [`DirectRtp::send`] queued nothing.
enum Unsent {
    /// No SRTP context yet: the handshake is not done.
    NoKeys,
    Marshal(rtc::shared::error::Error),
    Encrypt(rtc::shared::error::Error),
}

/// One leg (a track of one subscriber) sent by [`DirectRtp`], with the counters of its sender
/// reports.
pub(crate) struct DirectLeg {
    rtp: Arc<DirectRtp>,
    sent: Mutex<SentCounters>,
    clock_rate: u32,
}

impl DirectLeg {
    /// A leg of `rtp` whose codec's clock runs at `clock_rate` Hz.
    pub(crate) fn new(rtp: Arc<DirectRtp>, clock_rate: u32) -> Self {
        Self { rtp, sent: Mutex::new(SentCounters::default()), clock_rate }
    }

    /// The RTCP sender report of this leg at `now`, once it has sent a packet: what it sent, and
    /// the RTP time matching `now`'s wall-clock time (which the receiver uses to synchronise
    /// audio and video).
    pub(crate) fn sender_report(&self, now: Instant) -> Option<SenderReport> {
        lock(&self.sent).report(now, self.clock_rate)
    }
}

impl RtpSink for DirectLeg {
    fn try_write(&self, packet: rtp::Packet, batch: &mut SendBatch) -> Handed {
        let handed = self.rtp.send(&packet, batch);
        if handed == Handed::Queued {
            lock(&self.sent).record(batch.now(), &packet);
        }
        handed
    }

    /// Level 1: the connection's [`DirectRtp`] (its SRTP context is in it); level 2: its path.
    fn prefetch(&self, level: u8) {
        let rtp = Arc::as_ptr(&self.rtp);
        match level {
            1 => {
                // The context takes a few cache lines after the lock.
                for line in 0..std::mem::size_of::<DirectRtp>().div_ceil(64) {
                    prefetch(rtp.cast::<u8>().wrapping_add(line * 64));
                }
            }
            _ => prefetch(Arc::as_ptr(&self.rtp.path)),
        }
    }
}

/// What a sender report says: packets and payload octets sent, and the RTP timestamp of the
/// last frame begun with the instant it was sent. As the `webrtc` crate's sender-report
/// interceptor counts them: an out-of-order packet (a retransmission) counts, but does not move
/// the timestamp mapping.
#[derive(Debug, Default)]
struct SentCounters {
    ssrc: u32,
    packets: u32,
    octets: u32,
    last_seq: u16,
    /// The RTP timestamp of the last frame begun, and when it was sent.
    last_frame: Option<(u32, Instant)>,
}

impl SentCounters {
    fn record(&mut self, now: Instant, packet: &rtp::Packet) {
        let header = &packet.header;
        let in_order = match self.last_frame {
            None => true,
            Some(_) => is_after(header.sequence_number, self.last_seq),
        };
        if in_order {
            self.ssrc = header.ssrc;
            self.last_seq = header.sequence_number;
            if self.last_frame.is_none_or(|(timestamp, _)| timestamp != header.timestamp) {
                self.last_frame = Some((header.timestamp, now));
            }
        }
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(u32::try_from(packet.payload.len()).unwrap_or(u32::MAX));
    }

    fn report(&self, now: Instant, clock_rate: u32) -> Option<SenderReport> {
        let (timestamp, sent_at) = self.last_frame?;
        let elapsed = now.saturating_duration_since(sent_at).as_secs_f64();
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time: SystemInstant::now(now).ntp(now),
            rtp_time: timestamp.wrapping_add((elapsed * f64::from(clock_rate)) as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;
