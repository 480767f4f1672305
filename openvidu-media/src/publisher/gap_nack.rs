//! A publisher's NACK generator that sleeps while nothing is missing.
//!
//! The `rtc` crate's NACK generator, once a stream flows, asks for a timer every 100 ms for as long
//! as the connection lives, and at each one looks for missing packets: ten wake-ups a second of
//! the media thread per publisher, which find nothing on a network that loses nothing.
//! [`GapNackGenerator`] wraps it and lets its timer run only from the first packet that arrives
//! after a gap in its stream's sequence numbers until a tick finds nothing left to ask for. The
//! NACKs are the crate's, the same ones at the same pace: the first at least one interval after
//! the gap was seen (a packet only reordered has arrived by then), then one each interval while
//! packets are missing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, NackGeneratorBuilder, NackGeneratorInterceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

use crate::seq::is_after;

/// The crate's NACK generator, timed by the gaps it has to fill (see the module docs).
pub(crate) struct GapNackGenerator {
    inner: NackGeneratorInterceptor,
    /// The generator's interval: the first tick after a gap waits at least this long.
    interval: Duration,
    /// The highest sequence number seen per SSRC (a publisher has two or three: a scan is cheaper
    /// than hashing, on every packet).
    highest: Vec<(u32, u16)>,
    /// When the generator is next to look for missing packets; `None` while nothing is missing.
    due: Option<Instant>,
    /// What the generator wrote at the last tick, held so that whether it wrote anything is known.
    written: VecDeque<TaggedPacket>,
}

impl GapNackGenerator {
    /// The crate's generator with its defaults, looking for missing packets every `interval`
    /// while some are missing.
    pub(crate) fn new(interval: Duration) -> Self {
        let inner = NackGeneratorBuilder::new().with_interval(interval).build();
        Self { inner, interval, highest: Vec::new(), due: None, written: VecDeque::new() }
    }

    /// Notes `seq` of `ssrc`: true when it leaves a gap behind it (it is ahead of the highest
    /// seen by more than one; a packet behind the highest fills a gap or is a duplicate).
    fn leaves_gap(&mut self, ssrc: u32, seq: u16) -> bool {
        let Some((_, highest)) = self.highest.iter_mut().find(|(known, _)| *known == ssrc) else {
            self.highest.push((ssrc, seq));
            return false;
        };
        if !is_after(seq, *highest) {
            return false;
        }
        let ahead = seq.wrapping_sub(*highest);
        *highest = seq;
        ahead > 1
    }
}

/// Whether a packet the generator wrote is a NACK (it also passes on what is written through it).
fn is_nack(packet: &TaggedPacket) -> bool {
    matches!(&packet.message.packet, Packet::Rtcp(rtcp) if rtcp.iter().any(|p| p.as_any().is::<TransportLayerNack>()))
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for GapNackGenerator {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(rtp) = &msg.message.packet
            && self.leaves_gap(rtp.header.ssrc, rtp.header.sequence_number)
            && self.due.is_none()
        {
            self.due = Some(msg.now + self.interval);
        }
        self.inner.handle_read(msg)
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.inner.poll_read()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.inner.handle_write(msg)
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.written.pop_front().or_else(|| self.inner.poll_write())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        let Some(due) = self.due else { return Ok(()) };
        if now < due {
            return Ok(());
        }
        // The generator's own deadline is past (it kept its 100-ms schedule while it was not
        // called): it looks for missing packets now.
        self.inner.handle_timeout(now)?;
        let mut asked = false;
        while let Some(packet) = self.inner.poll_write() {
            asked |= is_nack(&packet);
            self.written.push_back(packet);
        }
        // Nothing asked for: nothing is missing (or nothing more will be asked for), so the timer
        // stops until the next gap.
        self.due = asked.then(|| self.inner.poll_timeout().unwrap_or(now + self.interval));
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.due
    }

    fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close()
    }
}

impl Interceptor for GapNackGenerator {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_local_stream(info);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_local_stream(info);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.highest.retain(|(ssrc, _)| *ssrc != info.ssrc);
        self.inner.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::RTCPFeedback;
    use rtc::rtp;

    use super::*;

    const SSRC: u32 = 1234;
    const INTERVAL: Duration = Duration::from_millis(100);

    /// A generator bound to one video stream that negotiated `nack`.
    fn generator() -> GapNackGenerator {
        let mut g = GapNackGenerator::new(INTERVAL);
        let info = StreamInfo {
            ssrc: SSRC,
            rtcp_feedback: vec![RTCPFeedback { typ: "nack".into(), parameter: String::new() }],
            ..Default::default()
        };
        g.bind_remote_stream(&info);
        g
    }

    fn read(g: &mut GapNackGenerator, seq: u16, now: Instant) {
        let header = rtp::header::Header { ssrc: SSRC, sequence_number: seq, payload_type: 96, ..Default::default() };
        let packet = rtp::Packet { header, payload: bytes::Bytes::from_static(&[1, 2, 3]) };
        let msg = TaggedPacket { now, transport: Default::default(), message: Packet::Rtp(packet).into() };
        g.handle_read(msg).expect("read");
        assert!(g.poll_read().is_some(), "every packet goes on up the chain");
    }

    /// The sequence numbers the NACKs written so far ask for.
    fn nacked(g: &mut GapNackGenerator) -> Vec<u16> {
        let mut seqs = Vec::new();
        while let Some(packet) = g.poll_write() {
            let Packet::Rtcp(rtcp) = packet.message.packet else { continue };
            for p in rtcp {
                if let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() {
                    seqs.extend(nack.nacks.iter().flat_map(|pair| pair.packet_list()));
                }
            }
        }
        seqs
    }

    #[test]
    fn packets_in_order_ask_for_no_timer() {
        let mut g = generator();
        let t0 = Instant::now();
        for (i, seq) in (65_530..=65_535).chain(0..10).enumerate() {
            read(&mut g, seq, t0 + INTERVAL / 4 * i as u32);
        }
        assert_eq!(g.poll_timeout(), None, "a stream that lost nothing, across the wrap, has nothing to time");
        g.handle_timeout(t0 + INTERVAL * 10).expect("timeout");
        assert!(nacked(&mut g).is_empty());
    }

    #[test]
    fn a_gap_is_nacked_one_interval_after_it_is_seen_until_it_is_filled() {
        let mut g = generator();
        let t0 = Instant::now();
        read(&mut g, 10, t0);
        read(&mut g, 11, t0);
        read(&mut g, 14, t0 + Duration::from_millis(5));
        let due = g.poll_timeout().expect("a timer for the gap");
        assert_eq!(due, t0 + Duration::from_millis(5) + INTERVAL);

        // Another connection's timer earlier than that does not make it ask yet.
        g.handle_timeout(due - Duration::from_millis(1)).expect("timeout");
        assert!(nacked(&mut g).is_empty());

        g.handle_timeout(due).expect("timeout");
        assert_eq!(nacked(&mut g), [12, 13]);
        let again = g.poll_timeout().expect("still missing: the timer goes on");
        assert_eq!(again, due + INTERVAL);

        // The retransmissions arrive: the next tick asks for nothing and the timer stops.
        read(&mut g, 12, due + Duration::from_millis(10));
        read(&mut g, 13, due + Duration::from_millis(10));
        g.handle_timeout(again).expect("timeout");
        assert!(nacked(&mut g).is_empty());
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn a_packet_only_reordered_is_not_nacked() {
        let mut g = generator();
        let t0 = Instant::now();
        read(&mut g, 100, t0);
        read(&mut g, 102, t0);
        read(&mut g, 101, t0 + Duration::from_millis(2));
        let due = g.poll_timeout().expect("a timer for the gap seen");
        g.handle_timeout(due).expect("timeout");
        assert!(nacked(&mut g).is_empty(), "101 arrived before the tick");
        assert_eq!(g.poll_timeout(), None);
    }
}
