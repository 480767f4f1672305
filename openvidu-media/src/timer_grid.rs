//! Timers that wake the node together.
//!
//! A node's periodic work runs on timers of about a second: every peer connection's RTCP reports
//! and ICE consent tick, every subscriber's sender reports, every signalling socket's watchdog.
//! Each started at its own moment, so their deadlines are spread over the second, and each
//! costs a wake-up of its thread of its own, which on a virtual machine costs far more than the
//! work it does (at one subscriber the node's worker thread woke ten times a second on timers
//! that each had a few microseconds of work to do). Here those deadlines fall on a shared grid
//! ([`GRID`], from one epoch per process), as an operating system's timer slack or a browser's
//! timer alignment do: the timers due in one grid step fire in one wake-up.
//!
//! A deadline moves by at most half of the time left to it, and only when that is at least
//! [`SLACK_FROM`]: what a protocol times in tens of milliseconds (ICE checks while connecting,
//! NACKs, congestion feedback) keeps its exact deadline. The steps are nested (each a multiple
//! of the next smaller one, from one epoch), so a deadline rounded to a fine step still meets
//! the coarse ones: a one-second timer that a packet's wake-up finds 300 ms from its deadline
//! goes to the 125-ms step, which every 250-ms point is on.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The coarsest step of the grid, for deadlines at least twice as far away.
pub const GRID: Duration = Duration::from_millis(250);

/// Deadlines nearer than this are kept exact; from it on, a deadline moves to a step of the grid
/// of at most half the time left to it (62.5, 125 or [`GRID`] ms).
pub const SLACK_FROM: Duration = Duration::from_millis(125);

/// The grid's origin: the first time any timer of this process asked for it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The first multiple of `step` (not zero: 62.5 ms or more, or an aligned interval's period of
/// a millisecond or more) from the epoch at or after `t`; `t` itself when it is before the epoch.
fn grid_point(t: Instant, step: Duration) -> Instant {
    let origin = epoch();
    if t <= origin {
        return t;
    }
    let step_ns = step.as_nanos();
    let steps = t.duration_since(origin).as_nanos().div_ceil(step_ns);
    u64::try_from(steps * step_ns).map_or(t, |ns| origin + Duration::from_nanos(ns))
}

/// When a timer asked to fire `delay` after `now` fires: exactly then when `delay` is below
/// [`SLACK_FROM`], otherwise at the next point of the coarsest step of the grid that is at most
/// half of `delay` (so less than half of `delay` later).
pub fn coalesced_deadline(now: Instant, delay: Duration) -> Instant {
    let exact = now + delay;
    if delay < SLACK_FROM {
        return exact;
    }
    let mut step = GRID;
    while step * 2 > delay {
        step /= 2;
    }
    grid_point(exact, step)
}

/// A tokio interval of `period` whose ticks fall on multiples of `period` from the grid's epoch,
/// so that every aligned interval of that period (and the [`GRID`]'s points, when `period` is a
/// multiple of it) ticks in the same wake-up. The first tick is the next such point, not at
/// once; a tick missed is skipped, which keeps the interval on the grid.
pub fn aligned_interval(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(1));
    // The epoch first: made after the clock is read, it would be later than the time rounded.
    epoch();
    let now = tokio::time::Instant::now().into_std();
    let start = grid_point(now + Duration::from_nanos(1), period);
    let mut interval = tokio::time::interval_at(start.into(), period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since_epoch(t: Instant) -> Duration {
        t.duration_since(epoch())
    }

    #[test]
    fn near_deadlines_are_exact() {
        let now = Instant::now();
        for ms in [0, 1, 50, 100, 124] {
            let delay = Duration::from_millis(ms);
            assert_eq!(coalesced_deadline(now, delay), now + delay);
        }
    }

    #[test]
    fn distant_deadlines_land_on_the_grid_less_than_a_step_late() {
        let now = Instant::now() + Duration::from_micros(1234);
        for (ms, step_us) in [
            (125, 62_500),
            (249, 62_500),
            (250, 125_000),
            (499, 125_000),
            (500, 250_000),
            (1000, 250_000),
            (5000, 250_000),
        ] {
            let delay = Duration::from_millis(ms);
            let at = coalesced_deadline(now, delay);
            assert!(at >= now + delay, "{ms} ms: early");
            assert!(at < now + delay + Duration::from_micros(step_us), "{ms} ms: a step late or more");
            assert!(at - (now + delay) <= delay / 2, "{ms} ms: more than half of it late");
            assert_eq!(since_epoch(at).as_micros() % u128::from(step_us), 0, "{ms} ms: off its step of the grid");
        }
    }

    #[test]
    fn one_second_timers_due_in_the_same_step_fire_together() {
        let step_end = grid_point(Instant::now() + Duration::from_secs(2), GRID);
        let second = Duration::from_secs(1);
        // Started 190 ms apart, both due in the step that ends at `step_end`.
        let a = coalesced_deadline(step_end - Duration::from_millis(200) - second, second);
        let b = coalesced_deadline(step_end - Duration::from_millis(10) - second, second);
        assert_eq!((a, b), (step_end, step_end));
        // Due just after it: the next step.
        let c = coalesced_deadline(step_end + Duration::from_millis(1) - second, second);
        assert_eq!(c, step_end + GRID);
    }

    #[tokio::test]
    async fn aligned_intervals_tick_on_multiples_of_their_period() {
        let period = Duration::from_millis(50);
        let mut one = aligned_interval(period);
        tokio::time::sleep(Duration::from_millis(17)).await;
        let mut two = aligned_interval(period);
        // Made 17 ms apart (or more on a loaded machine, when ticks are skipped), both tick on the
        // same points: multiples of the period from the epoch.
        for _ in 0..3 {
            for tick in [one.tick().await, two.tick().await] {
                let off = since_epoch(tick.into_std()).as_nanos() % period.as_nanos();
                assert_eq!(off, 0, "a tick {off} ns off the grid");
            }
        }
    }
}
