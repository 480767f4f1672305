use super::*;

const MS: Duration = Duration::from_millis(1);

fn limiter() -> (KeyframeLimiter, Instant) {
    (KeyframeLimiter::new(500 * MS), Instant::now())
}

#[test]
fn idle_limiter_wants_nothing() {
    let (mut l, t0) = limiter();
    assert_eq!(l.poll(t0), None);
    assert_eq!(l.poll(t0 + 10_000 * MS), None);
}

#[test]
fn first_request_is_sent_at_once() {
    let (mut l, t0) = limiter();
    l.handle_request(t0);
    assert_eq!(l.poll(t0), Some(KeyframeOut::SendRequest));
    assert_eq!(l.poll(t0), None, "sent once");
}

#[test]
fn requests_inside_the_interval_merge_into_one_at_its_end() {
    let (mut l, t0) = limiter();
    l.handle_request(t0);
    assert_eq!(l.poll(t0), Some(KeyframeOut::SendRequest));
    for i in 1..10 {
        let now = t0 + i * 40 * MS;
        l.handle_request(now);
        assert_eq!(l.poll(now), Some(KeyframeOut::Timeout(t0 + 500 * MS)));
    }
    assert_eq!(l.poll(t0 + 499 * MS), Some(KeyframeOut::Timeout(t0 + 500 * MS)));
    assert_eq!(l.poll(t0 + 500 * MS), Some(KeyframeOut::SendRequest));
    assert_eq!(l.poll(t0 + 501 * MS), None);
}

#[test]
fn a_late_poll_sends_and_restarts_the_interval_from_then() {
    let (mut l, t0) = limiter();
    l.handle_request(t0);
    assert_eq!(l.poll(t0), Some(KeyframeOut::SendRequest));
    l.handle_request(t0 + 100 * MS);
    // The driver woke late.
    assert_eq!(l.poll(t0 + 900 * MS), Some(KeyframeOut::SendRequest));
    l.handle_request(t0 + 1000 * MS);
    assert_eq!(l.poll(t0 + 1000 * MS), Some(KeyframeOut::Timeout(t0 + 1400 * MS)));
}

#[test]
fn at_most_one_request_per_interval_over_a_long_burst() {
    let (mut l, t0) = limiter();
    let mut sent = 0;
    // One request every 10 ms for 10 s, polled every millisecond.
    for ms in 0..10_000u32 {
        let now = t0 + ms * MS;
        if ms % 10 == 0 {
            l.handle_request(now);
        }
        if l.poll(now) == Some(KeyframeOut::SendRequest) {
            sent += 1;
        }
    }
    assert_eq!(sent, 20);
}

#[test]
fn zero_interval_sends_every_request() {
    let mut l = KeyframeLimiter::new(Duration::ZERO);
    let t0 = Instant::now();
    for i in 0..5 {
        l.handle_request(t0 + i * MS);
        assert_eq!(l.poll(t0 + i * MS), Some(KeyframeOut::SendRequest));
    }
}

#[test]
fn pli_and_fir_are_keyframe_requests_but_reports_are_not() {
    use rtc::rtcp::receiver_report::ReceiverReport;
    let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 };
    let fir = FullIntraRequest::default();
    assert!(is_keyframe_request(&pli));
    assert!(is_keyframe_request(&fir));
    assert!(!is_keyframe_request(&ReceiverReport::default()));
}
