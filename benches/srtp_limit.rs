//! The physical limit of forwarding on this machine: the least work an SFU must do per forwarded
//! packet, with the same SRTP code and crypto backend as `openvidu-media` (the `rtc` crate's
//! SRTP on `ring`), measured in packets per CPU-second of this process.
//!
//! Per packet: context A encrypts a 1000-byte-payload RTP packet (the publisher's side),
//! context B (same key, salt and profile, replay protection on as for a remote stream) decrypts
//! it, the header is rewritten in place (SSRC, payload type: what the SFU changes), B re-encrypts
//! it and the result goes over UDP on loopback to a socket that a second thread drains with
//! `recvmmsg`. The profile is `AEAD_AES_128_GCM`, the first of the `rtc` crate's default DTLS-SRTP
//! profiles and the one Chrome and Firefox pick with it (`-- --profile cm` for
//! `AES128_CM_HMAC_SHA1_80`).
//!
//! Three send variants, each for `--seconds` (default 3) of wall time:
//! - `send_to`: one `send_to` per packet, as the SFU's UDP socket does;
//! - `sendmmsg`: batches of 32 packets per `sendmmsg` call;
//! - `sendmmsg+gso`: `sendmmsg` of 2 messages, each one UDP GSO super-datagram of 32 equal
//!   segments (`UDP_SEGMENT` socket option); skipped with a message when the kernel refuses GSO.
//!
//! CPU time is the whole process's (`getrusage(RUSAGE_SELF)`: sender, receiver and the kernel
//! work of both), so the figure includes receiving what was sent; the sender thread's own figure
//! (`RUSAGE_THREAD`) is printed beside it. Run with `cargo bench --bench srtp_limit`; expect
//! one `limit <variant>: N pkts/CPU-s` line per variant (`scripts/bench` parses them).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::srtp::context::Context;
use rtc::srtp::option::srtp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;

/// Payload bytes per RTP packet.
const PAYLOAD: usize = 1000;
/// Packets per `sendmmsg` call, and segments per GSO super-datagram.
const BATCH: usize = 32;
/// GSO super-datagrams per `sendmmsg` call.
const GSO_MSGS: usize = 2;
/// `UDP_SEGMENT` from `linux/udp.h` (not exported by `libc` for glibc targets).
const UDP_SEGMENT: libc::c_int = 103;
/// The SSRC and payload type the "subscriber leg" gets.
const OUT_SSRC: u32 = 0x1234_5679;
const OUT_PT: u8 = 100;

struct Args {
    seconds: f64,
    gcm: bool,
}

fn args() -> Args {
    let mut a = Args { seconds: 3.0, gcm: true };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--seconds" => a.seconds = w[1].parse().unwrap_or(a.seconds),
            "--profile" => a.gcm = w[1] != "cm",
            _ => {}
        }
    }
    a
}

/// The crypto side of the loop: publisher context A, SFU context B.
struct Pipeline {
    a: Context,
    b: Context,
    plain: Vec<u8>,
    seq: u16,
    ts: u32,
}

impl Pipeline {
    fn new(gcm: bool) -> Self {
        let provider = rtc::crypto::default_provider().expect("the ring crypto provider");
        let key: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        let (profile, salt_len) =
            if gcm { (ProtectionProfile::AeadAes128Gcm, 12) } else { (ProtectionProfile::Aes128CmHmacSha1_80, 14) };
        let salt: Vec<u8> = (0..salt_len as u8).map(|i| i.wrapping_mul(91).wrapping_add(3)).collect();
        let ctx = |replay: bool| {
            Context::new(&key, &salt, profile, replay.then(|| srtp_replay_protection(64)), None, provider.crypto())
                .expect("an SRTP context")
        };
        let mut plain = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        plain.extend((0..PAYLOAD as u32).map(|i| i as u8));
        Self { a: ctx(false), b: ctx(true), plain, seq: 0, ts: 0 }
    }

    /// One packet through encrypt (A) → decrypt (B) → header rewrite → encrypt (B).
    fn next(&mut self) -> impl std::ops::DerefMut<Target = [u8]> + use<> {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(3000);
        self.plain[2..4].copy_from_slice(&self.seq.to_be_bytes());
        self.plain[4..8].copy_from_slice(&self.ts.to_be_bytes());
        let protected = self.a.encrypt_rtp(&self.plain).expect("encrypts");
        let mut rtp = self.b.decrypt_rtp(&protected).expect("decrypts");
        rtp[1] = (rtp[1] & 0x80) | OUT_PT;
        rtp[8..12].copy_from_slice(&OUT_SSRC.to_be_bytes());
        self.b.encrypt_rtp(&rtp).expect("re-encrypts")
    }
}

/// User + system time of the process (`RUSAGE_SELF`) or of the calling thread (`RUSAGE_THREAD`).
fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr = libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() };
    sa
}

fn set_int_opt(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A loopback socket drained by a thread with `recvmmsg` until `stop`.
struct Receiver {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Receiver {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a receiving socket");
        let _ = set_int_opt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20);
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let addr = match socket.local_addr().expect("a local address") {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
        };
        let (stop, received) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            const N: usize = 64;
            let mut bufs = vec![[0u8; 2048]; N];
            let mut iovs: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: b.len() })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .map(|iov| {
                    // SAFETY: mmsghdr is plain old data; the pointers outlive the loop below.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_iov = iov;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            while !s.load(Ordering::Relaxed) {
                // SAFETY: msgs point into bufs/iovs, alive for the whole loop.
                let n = unsafe {
                    libc::recvmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), N as libc::c_uint, 0, std::ptr::null_mut())
                };
                if n > 0 {
                    r.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            drop(bufs);
        });
        Self { addr, stop, received, thread }
    }

    /// Stops the thread (after draining what is in flight) and gives the count received.
    fn finish(self) -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.received.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    SendTo,
    Sendmmsg,
    Gso,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::SendTo => "send_to",
            Variant::Sendmmsg => "sendmmsg",
            Variant::Gso => "sendmmsg+gso",
        }
    }
}

/// Sends `msgs` with `sendmmsg`, retrying the remainder after partial sends.
fn sendmmsg_all(fd: libc::c_int, msgs: &mut [libc::mmsghdr]) -> std::io::Result<()> {
    let mut done = 0;
    while done < msgs.len() {
        // SAFETY: the headers point into buffers the caller keeps alive.
        let n = unsafe { libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (msgs.len() - done) as libc::c_uint, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == std::io::ErrorKind::WouldBlock {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Runs one variant; `None` when the kernel refused it (GSO), with the reason printed.
fn run(variant: Variant, pipeline: &mut Pipeline, seconds: f64) -> Option<f64> {
    let receiver = Receiver::start();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a sending socket");
    let fd = socket.as_raw_fd();
    let dst = receiver.addr;
    let mut sa = sockaddr(dst);
    let seg_size = pipeline.next().len();
    if variant == Variant::Gso
        && let Err(e) = set_int_opt(fd, libc::SOL_UDP, UDP_SEGMENT, seg_size as libc::c_int)
    {
        println!("limit {}: skipped, the kernel refuses UDP_SEGMENT ({e})", variant.name());
        receiver.finish();
        return None;
    }
    let per_call = match variant {
        Variant::SendTo => 1,
        Variant::Sendmmsg => BATCH,
        Variant::Gso => BATCH * GSO_MSGS,
    };
    let (wall0, cpu0, thread0) = (Instant::now(), cpu(libc::RUSAGE_SELF), cpu(libc::RUSAGE_THREAD));
    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut batch = Vec::with_capacity(per_call);
    while wall0.elapsed().as_secs_f64() < seconds {
        batch.clear();
        for _ in 0..per_call {
            batch.push(pipeline.next());
        }
        let result = match variant {
            Variant::SendTo => socket.send_to(&batch[0][..], dst).map(|_| ()),
            Variant::Sendmmsg | Variant::Gso => {
                let mut iovs: Vec<libc::iovec> = batch
                    .iter_mut()
                    .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: b.len() })
                    .collect();
                let per_msg = if variant == Variant::Gso { BATCH } else { 1 };
                let mut msgs: Vec<libc::mmsghdr> = iovs
                    .chunks_mut(per_msg)
                    .map(|iov| {
                        // SAFETY: plain old data; the pointers outlive the send below.
                        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        m.msg_hdr.msg_name = &mut sa as *mut libc::sockaddr_in as *mut libc::c_void;
                        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                        m.msg_hdr.msg_iov = iov.as_mut_ptr();
                        m.msg_hdr.msg_iovlen = iov.len() as _;
                        m
                    })
                    .collect();
                sendmmsg_all(fd, &mut msgs)
            }
        };
        match result {
            Ok(()) => sent += per_call as u64,
            Err(e) if variant == Variant::Gso && sent == 0 => {
                println!("limit {}: skipped, the kernel refuses GSO sends ({e})", variant.name());
                receiver.finish();
                return None;
            }
            Err(_) => errors += 1,
        }
    }
    let (wall, cpu_s, thread_s) = (
        wall0.elapsed().as_secs_f64(),
        (cpu(libc::RUSAGE_SELF) - cpu0).as_secs_f64(),
        (cpu(libc::RUSAGE_THREAD) - thread0).as_secs_f64(),
    );
    let received = receiver.finish();
    let rate = sent as f64 / cpu_s.max(1e-9);
    println!(
        "limit {}: {rate:.0} pkts/CPU-s  (sent {sent} in {wall:.1} s = {:.0} pkts/s, process CPU {cpu_s:.2} s, \
         sender thread alone {:.0} pkts/CPU-s, received {received}, send errors {errors})",
        variant.name(),
        sent as f64 / wall,
        sent as f64 / thread_s.max(1e-9),
    );
    Some(rate)
}

/// The crypto alone, for reference: no socket at all.
fn crypto_only(pipeline: &mut Pipeline, seconds: f64) {
    let (wall0, cpu0) = (Instant::now(), cpu(libc::RUSAGE_THREAD));
    let mut n = 0u64;
    while wall0.elapsed().as_secs_f64() < seconds {
        for _ in 0..BATCH {
            std::hint::black_box(pipeline.next());
        }
        n += BATCH as u64;
    }
    let cpu_s = (cpu(libc::RUSAGE_THREAD) - cpu0).as_secs_f64();
    println!("crypto only (encrypt + decrypt + re-encrypt, no UDP): {:.0} pkts/CPU-s", n as f64 / cpu_s.max(1e-9));
}

fn main() {
    let a = args();
    let profile = if a.gcm { "AEAD_AES_128_GCM" } else { "AES128_CM_HMAC_SHA1_80" };
    println!(
        "SRTP forwarding limit: {profile} (rtc-srtp 0.21.1, ring), {PAYLOAD} B payload, encrypt → decrypt → rewrite → \
         re-encrypt → UDP loopback, {} s per variant, process CPU incl. the draining thread",
        a.seconds
    );
    let mut pipeline = Pipeline::new(a.gcm);
    crypto_only(&mut pipeline, a.seconds.min(1.0));
    let mut best: Option<(&str, f64)> = None;
    for variant in [Variant::SendTo, Variant::Sendmmsg, Variant::Gso] {
        if let Some(rate) = run(variant, &mut pipeline, a.seconds)
            && best.is_none_or(|(_, b)| rate > b)
        {
            best = Some((variant.name(), rate));
        }
    }
    if let Some((name, rate)) = best {
        println!("limit best: {rate:.0} pkts/CPU-s ({name})");
    }
}
