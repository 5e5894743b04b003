//! `cpu-probe A B`: how long one cache line takes to go from CPU A to CPU B and back, in ns.
//!
//! Why the bench wants it: on a 2-vCPU virtual machine the host sometimes runs the two vCPUs on
//! cores that share a cache and sometimes on cores that do not, and it moves them from minute to
//! minute. Every frame a back-end forwards crosses between the generator's CPU and the subject's,
//! so packet rates follow that placement (2–3× apart). A run is only comparable with another run
//! made in the same placement; this probe, taken before and after each run, says which one it was.
//!
//! Two threads, one pinned to each CPU, pass a counter back and forth through one cache line.
//! Batches of round trips are timed and the median batch is printed, so a preemption in one batch
//! does not move the figure. Prints one JSON object; exits 1 with a message on error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BATCHES: usize = 9;
const ROUND_TRIPS_PER_BATCH: u64 = 2000;
/// A CPU that never lets the other thread run (offline, or monopolised) must not hang the bench.
const DEADLINE: Duration = Duration::from_secs(5);

/// The line the two threads pass back and forth, alone in its cache line.
#[repr(align(128))]
struct Ball(AtomicU64);

fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays inside it for cpu < CPU_SETSIZE,
    // checked by the caller.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("cannot run on CPU {cpu}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// What a thread that gives up leaves in the ball, so the other stops waiting.
const ABANDONED: u64 = u64::MAX;

/// Why one side stopped.
enum Stop {
    /// The other side gave up first (its reason is the one to report).
    OtherGaveUp,
    Failed(String),
}

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
        if spins % 4096 == 0 && Instant::now() > deadline {
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
fn measure(a: usize, b: usize) -> Result<Vec<f64>, String> {
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
        match (asked, answered) {
            (Ok(()), Ok(())) => Ok(batches),
            (Err(Stop::Failed(why)), _) | (_, Err(Stop::Failed(why))) => Err(why),
            _ => Err("both threads gave up".to_string()),
        }
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn parse_cpu(arg: Option<String>) -> Result<usize, String> {
    let text = arg.ok_or("usage: cpu-probe CPU_A CPU_B")?;
    let cpu: usize = text.parse().map_err(|_| format!("not a CPU number: {text:?}"))?;
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu} is out of range"));
    }
    Ok(cpu)
}

fn main() {
    let run = || -> Result<String, String> {
        let mut args = std::env::args().skip(1);
        let (a, b) = (parse_cpu(args.next())?, parse_cpu(args.next())?);
        if a == b {
            return Err("the two CPUs must differ".into());
        }
        let mut batches = measure(a, b)?;
        let listed: Vec<String> = batches.iter().map(|ns| format!("{ns:.1}")).collect();
        let round_trip = median(&mut batches);
        Ok(format!("{{\"cpus\":[{a},{b}],\"roundTripNs\":{round_trip:.1},\"batchesNs\":[{}]}}", listed.join(",")))
    };
    match run() {
        Ok(json) => println!("{json}"),
        Err(message) => {
            eprintln!("cpu-probe: {message}");
            std::process::exit(1);
        }
    }
}
