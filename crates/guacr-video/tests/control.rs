//! The PLI throttle and the bitrate controller, driven by a fake clock.

use std::time::{Duration, Instant};

use guacr_video::{BitrateController, KeyframeThrottle};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Simulates a 30 fps frame loop for `span_ms` starting at `t0`, where
/// `pli_at(t)` says whether a PLI arrives in the tick at `t` ms; returns the
/// times (ms) of keyframes served for PLIs.
fn run(
    th: &mut KeyframeThrottle,
    t0: Instant,
    span_ms: u64,
    pli_at: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let mut served = Vec::new();
    for t in 0..=span_ms {
        let now = t0 + ms(t);
        if pli_at(t) {
            th.request(now);
        }
        if th.poll(now) {
            served.push(t);
        }
    }
    served
}

#[test]
fn flood_of_100_plis_in_one_second_gets_at_most_two_keyframes() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    th.keyframe_sent(t0); // the session's first frame
    // 100 PLIs spread over one second (every 10 ms).
    let served = run(&mut th, t0, 999, |t| t % 10 == 0);
    assert_eq!(th.requests(), 100);
    assert!(served.len() <= 2, "served {served:?}");
    assert!(!served.is_empty(), "a flood must still get a keyframe");
    // Any two served keyframes are ≥ 500 ms apart, the first ≥ 200 ms after the IDR.
    assert!(served[0] >= 200, "{served:?}");
    for pair in served.windows(2) {
        assert!(pair[1] - pair[0] >= 500, "{served:?}");
    }
}

#[test]
fn sustained_flood_is_two_per_second() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    let served = run(&mut th, t0, 9_999, |_| true); // a PLI every millisecond for 10 s
    assert!(served.len() <= 20, "{} keyframes in 10 s", served.len());
    assert!(served.len() >= 19, "{} keyframes in 10 s", served.len());
    // No 1-second window holds more than two.
    for &s in &served {
        let n = served.iter().filter(|&&x| x >= s && x < s + 1000).count();
        assert!(n <= 2, "window at {s}: {n}");
    }
}

#[test]
fn pli_shortly_after_an_idr_is_deferred_not_dropped() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    th.keyframe_sent(t0);
    th.request(t0 + ms(100));
    assert!(th.pending());
    assert_eq!(
        th.poll_timeout(),
        Some(t0 + ms(200)),
        "deadline for the session loop"
    );
    assert!(!th.poll(t0 + ms(100)));
    assert!(!th.poll(t0 + ms(199)));
    assert!(th.pending(), "still pending, not dropped");
    assert!(th.poll(t0 + ms(200)), "served at 200 ms");
    assert!(!th.pending());
    assert!(!th.poll(t0 + ms(201)), "served once");
    assert_eq!(th.served(), 1);
}

#[test]
fn pli_long_after_the_last_keyframe_is_served_at_once() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    th.keyframe_sent(t0);
    assert_eq!(th.poll_timeout(), None);
    th.request(t0 + ms(5_000));
    assert!(th.poll(t0 + ms(5_000)));
}

#[test]
fn second_pli_waits_500_ms_after_the_first_served() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    th.request(t0);
    assert!(th.poll(t0), "no keyframe yet: serve immediately");
    th.request(t0 + ms(250));
    assert!(!th.poll(t0 + ms(499)));
    assert!(th.poll(t0 + ms(500)));
}

#[test]
fn any_keyframe_satisfies_a_pending_request() {
    let t0 = Instant::now();
    let mut th = KeyframeThrottle::default();
    th.keyframe_sent(t0);
    th.request(t0 + ms(50));
    th.keyframe_sent(t0 + ms(150)); // e.g. a scene-change IDR
    assert!(!th.pending());
    assert!(!th.poll(t0 + ms(1_000)));
}

#[test]
fn bitrate_follows_the_estimate_within_the_ceiling() {
    let mut c = BitrateController::new(4_000_000, 200_000, 1_000_000);
    assert_eq!(c.target(), 1_000_000);
    assert_eq!(
        c.on_estimate(2_000_000),
        Some(1_800_000),
        "90% of the estimate"
    );
    assert_eq!(
        c.on_estimate(2_010_000),
        None,
        "small moves do not reconfigure"
    );
    assert_eq!(
        c.on_estimate(50_000_000),
        Some(4_000_000),
        "capped at the ceiling"
    );
    assert_eq!(c.on_estimate(u64::MAX), None);
    assert_eq!(c.target(), 4_000_000);
    assert_eq!(c.on_estimate(0), Some(200_000), "floor");
    assert_eq!(
        c.set_ceiling(100_000),
        Some(100_000),
        "a lower ceiling pulls the target down"
    );
    assert!(c.target() <= c.ceiling());
}

#[test]
fn bitrate_never_exceeds_the_ceiling_for_any_estimate() {
    let ceiling = 3_000_000;
    let mut c = BitrateController::new(ceiling, 100_000, 10_000_000);
    assert!(c.target() <= ceiling);
    let mut x: u64 = 12345;
    for _ in 0..10_000 {
        x = guacr_video::synth::hash(x);
        let est = x % 40_000_000;
        if let Some(t) = c.on_estimate(est) {
            assert!(t <= ceiling);
        }
        assert!(c.target() <= ceiling && c.target() >= 100_000);
    }
}
