//! The cache-line round trip between two CPUs (`cpu-probe A B`): two threads, one pinned to
//! each CPU, pass a counter back and forth through one cache line. Batches of round trips are
//! timed; the caller takes the median batch, so a preemption in one batch does not move the figure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::{outcome, pin_to, Stop, DEADLINE};

const BATCHES: usize = 9;
const ROUND_TRIPS_PER_BATCH: u64 = 2000;

/// The line the two threads pass back and forth, alone in its cache line.
#[repr(align(128))]
struct Ball(AtomicU64);

/// What a thread that gives up leaves in the ball, so the other stops waiting.
const ABANDONED: u64 = u64::MAX;

/// Spins until `ball` holds `value`.
fn wait_for(ball: &Ball, value: u64, deadline: Instant, other_cpu: usize) -> Result<(), Stop> {
    let mut spins = 0u32;
    loop {
        match ball.0.load(Ordering::Acquire) {
            seen if seen == value => return Ok(()),
            ABANDONED => return Err(Stop::OtherGaveUp),
            _ => {}
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) && Instant::now() > deadline {
            return Err(Stop::Failed(format!("the thread on CPU {other_cpu} did not keep up within {DEADLINE:?}")));
        }
        std::hint::spin_loop();
    }
}

/// Moves the ball from `seen` to `value`, unless the other side has given up meanwhile.
fn pass(ball: &Ball, seen: u64, value: u64) -> Result<(), Stop> {
    ball.0.compare_exchange(seen, value, Ordering::AcqRel, Ordering::Acquire).map(drop).map_err(|_| Stop::OtherGaveUp)
}

/// Runs `side`; if it fails, leaves ABANDONED in the ball for the other thread.
fn or_abandon(ball: &Ball, side: impl FnOnce() -> Result<(), Stop>) -> Result<(), Stop> {
    let result = side();
    if result.is_err() {
        ball.0.store(ABANDONED, Ordering::Release);
    }
    result
}

/// The nanoseconds of each batch's average round trip between CPUs `a` and `b`.
pub fn measure(a: usize, b: usize) -> Result<Vec<f64>, String> {
    let ball = Ball(AtomicU64::new(0));
    let total = BATCHES as u64 * ROUND_TRIPS_PER_BATCH;
    let deadline = Instant::now() + DEADLINE;
    std::thread::scope(|scope| {
        let responder = scope.spawn(|| {
            or_abandon(&ball, || {
                pin_to(b).map_err(Stop::Failed)?;
                for i in 0..total {
                    // The value went to 2i+1 by the other side: answer with 2i+2.
                    wait_for(&ball, 2 * i + 1, deadline, a)?;
                    pass(&ball, 2 * i + 1, 2 * i + 2)?;
                }
                Ok(())
            })
        });
        let mut batches = Vec::with_capacity(BATCHES);
        let asked = or_abandon(&ball, || {
            pin_to(a).map_err(Stop::Failed)?;
            for batch in 0..BATCHES as u64 {
                let start = Instant::now();
                for i in batch * ROUND_TRIPS_PER_BATCH..(batch + 1) * ROUND_TRIPS_PER_BATCH {
                    pass(&ball, 2 * i, 2 * i + 1)?;
                    wait_for(&ball, 2 * i + 2, deadline, b)?;
                }
                batches.push(start.elapsed().as_nanos() as f64 / ROUND_TRIPS_PER_BATCH as f64);
            }
            Ok(())
        });
        let answered = responder.join().map_err(|_| "the responder thread panicked".to_string())?;
        outcome(asked.map(|()| batches), answered)
    })
}

