//! Runs deterministic fuzz cases, for the fuzz tests of this crate and of the data path. Every
//! case has its own seed, derived from the run seed, and prints it when it fails.
//!
//! Environment: `FUZZ_SEED` (run seed), `FUZZ_ITERATIONS` (cases per test, default 20 000),
//! `FUZZ_SECONDS` (instead: as many cases as fit in this time), `FUZZ_CASE` (replay one case
//! seed). Numbers are decimal or 0x-hex. `npm run fuzz` sets them.

use std::time::{Duration, Instant};

use crate::mock::XorShift64;

const DEFAULT_ITERATIONS: u64 = 20_000;

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

/// The seed of case `index` of a run seeded `run_seed` (splitmix64).
fn case_seed(run_seed: u64, index: u64) -> u64 {
    let mut z = run_seed.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Prints the failing case's seed if the case panics (a guard-page fault kills the process
/// instead: `--nocapture` shows the run seed printed at the start).
struct CaseGuard {
    test: &'static str,
    seed: u64,
}

impl Drop for CaseGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}: case FAILED, replay with FUZZ_CASE={:#x}", self.test, self.seed);
        }
    }
}

/// Runs `case` with a generator per case seed, as the environment says; returns the case count.
pub fn run_cases(test: &'static str, default_seed: u64, mut case: impl FnMut(&mut XorShift64, u64)) -> u64 {
    if let Some(seed) = env_number("FUZZ_CASE") {
        let _guard = CaseGuard { test, seed };
        case(&mut XorShift64::new(seed), seed);
        return 1;
    }
    let run_seed = env_number("FUZZ_SEED").unwrap_or(default_seed);
    let deadline = env_number("FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let iterations = if deadline.is_some() { u64::MAX } else { env_number("FUZZ_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS) };
    eprintln!("{test}: run seed {run_seed:#x}");
    let mut cases = 0;
    while cases < iterations && deadline.map_or(true, |d| Instant::now() < d) {
        let seed = case_seed(run_seed, cases);
        let _guard = CaseGuard { test, seed };
        case(&mut XorShift64::new(seed), seed);
        cases += 1;
    }
    eprintln!("{test}: {cases} cases");
    cases
}
