/**
 * The probes the bench runs (`crates/cpu-probe`), for real: the cache-line round trip it takes
 * before and after every run, and the wake-up round trip it takes after each ping.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { crossCpuRoundTripNs, ensureProbe, wakeRoundTripUs } from '../../bench/lib/cpu-placement.ts';

/** The probe's message when it fails with `args`, checking that it fails at once. */
function stderrOf(t: ExecutionContext, ...args: string[]): string {
  const failed = t.throws<Error & { stderr: Buffer }>(() => execFileSync(ensureProbe(), args, { stdio: 'pipe', timeout: 2000 }));
  return String(failed?.stderr);
}

test('the probe times a cache line between two CPUs and refuses CPUs it cannot use', (t) => {
  if (availableParallelism() < 2) return t.fail('the bench needs two CPUs, and so does this test');
  const ns = crossCpuRoundTripNs(0, 1);
  // A round trip takes at least two cache-line transfers, and well under a millisecond.
  t.true(ns > 5 && ns < 1e6, `round trip ${ns} ns`);
  // Its errors name the problem, and it exits at once.
  t.regex(stderrOf(t, '0', '0'), /the two CPUs must differ/);
  t.regex(stderrOf(t, '0', 'one'), /not a CPU number: "one"/);
  t.regex(stderrOf(t, '0', '4000'), /CPU 4000 is out of range/);
  t.regex(stderrOf(t, '0', '1000'), /cannot run on CPU 1000: Invalid argument/);
  t.regex(stderrOf(t, '1000', '0'), /cannot run on CPU 1000: Invalid argument/);
});

test('the wake-up probe times two sleeping threads woken in turn, on two CPUs or on one', (t) => {
  if (availableParallelism() < 2) return t.fail('the bench needs two CPUs, and so does this test');
  // Two wake-ups and two system calls at least: more than a microsecond, and well under a second.
  for (const [a, b] of [[0, 1], [0, 0]]) {
    const us = wakeRoundTripUs(a, b);
    t.true(us > 1 && us < 1e6, `CPU ${a}↔${b}: ${us} µs`);
  }
  // A CPU the probe cannot run on is named, whichever side it is on, and neither side waits for
  // the other's deadline.
  t.regex(stderrOf(t, '--wake', '0', '1000'), /cannot run on CPU 1000: Invalid argument/);
  t.regex(stderrOf(t, '--wake', '1000', '0'), /cannot run on CPU 1000: Invalid argument/);
  t.regex(stderrOf(t, '--wake', '0'), /usage: cpu-probe \[--wake\] CPU_A CPU_B/);
  t.regex(stderrOf(t, '0', '1', '2'), /unexpected argument "2"/);
});
