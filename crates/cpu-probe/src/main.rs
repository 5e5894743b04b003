//! `cpu-probe A B`: how long one cache line takes to go from CPU A to CPU B and back, in ns.
//! `cpu-probe --wake A B`: how long a sleeping thread on B takes to wake and wake one on A, in µs.
//!
//! Why the bench wants the first: on a 2-vCPU virtual machine the host sometimes runs the two
//! vCPUs on cores that share a cache and sometimes on cores that do not, and it moves them from
//! minute to minute. Every frame a back-end forwards crosses between the generator's CPU and the
//! subject's, so packet rates follow that placement (2–3× apart). A run is only comparable with
//! another run made in the same placement; this probe, taken before and after each run, says which
//! one it was. The second explains ping times: see `wake`.
//!
//! Prints one JSON object; exits 1 with a message on error.

mod cache_line;
mod wake;

use std::time::Duration;

/// A CPU that never lets the other thread run (offline, or monopolised) must not hang the bench.
const DEADLINE: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: cpu-probe [--wake] CPU_A CPU_B";

/// Why one of a probe's two threads stopped.
enum Stop {
    /// The other side gave up first (its reason is the one to report).
    OtherGaveUp,
    Failed(String),
}

/// What a probe returns from its two threads' results: the asking thread's figures, or on failure
/// the reason of the side that failed first (not the other side's "gave up").
fn outcome<T>(asked: Result<T, Stop>, answered: Result<(), Stop>) -> Result<T, String> {
    match (asked, answered) {
        (Ok(figures), Ok(())) => Ok(figures),
        (Err(Stop::Failed(why)), _) | (_, Err(Stop::Failed(why))) => Err(why),
        _ => Err("both threads gave up".to_string()),
    }
}

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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn parse_cpu(arg: Option<String>) -> Result<usize, String> {
    let text = arg.ok_or(USAGE)?;
    let cpu: usize = text.parse().map_err(|_| format!("not a CPU number: {text:?}"))?;
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu} is out of range"));
    }
    Ok(cpu)
}

fn listed(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(",")
}

fn main() {
    let run = || -> Result<String, String> {
        let mut args = std::env::args().skip(1).peekable();
        let wake = args.next_if_eq("--wake").is_some();
        let (a, b) = (parse_cpu(args.next())?, parse_cpu(args.next())?);
        if let Some(extra) = args.next() {
            return Err(format!("unexpected argument {extra:?}; {USAGE}"));
        }
        if wake {
            let mut samples = wake::measure(a, b)?;
            let in_order = listed(&samples);
            let round_trip = median(&mut samples);
            return Ok(format!("{{\"cpus\":[{a},{b}],\"wakeRoundTripUs\":{round_trip:.1},\"samplesUs\":[{in_order}]}}"));
        }
        if a == b {
            return Err("the two CPUs must differ".into());
        }
        let mut batches = cache_line::measure(a, b)?;
        let in_order = listed(&batches);
        let round_trip = median(&mut batches);
        Ok(format!("{{\"cpus\":[{a},{b}],\"roundTripNs\":{round_trip:.1},\"batchesNs\":[{in_order}]}}"))
    };
    match run() {
        Ok(json) => println!("{json}"),
        Err(message) => {
            eprintln!("cpu-probe: {message}");
            std::process::exit(1);
        }
    }
}
