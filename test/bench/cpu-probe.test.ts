/**
 * The placement probe the bench runs before and after every run (`crates/cpu-probe`), for real.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { crossCpuRoundTripNs, ensureProbe } from '../../bench/lib/cpu-placement.ts';

test('the probe times a cache line between two CPUs and refuses CPUs it cannot use', (t) => {
  if (availableParallelism() < 2) return t.fail('the bench needs two CPUs, and so does this test');
  const ns = crossCpuRoundTripNs(0, 1);
  // A round trip takes at least two cache-line transfers, and well under a millisecond.
  t.true(ns > 5 && ns < 1e6, `round trip ${ns} ns`);
  // Its errors name the problem, and it exits at once.
  const stderrOf = (...args: string[]) => {
    const failed = t.throws<Error & { stderr: Buffer }>(() => execFileSync(ensureProbe(), args, { stdio: 'pipe', timeout: 2000 }));
    return String(failed?.stderr);
  };
  t.regex(stderrOf('0', '0'), /the two CPUs must differ/);
  t.regex(stderrOf('0', 'one'), /not a CPU number: "one"/);
  t.regex(stderrOf('0', '4000'), /CPU 4000 is out of range/);
  t.regex(stderrOf('0', '1000'), /cannot run on CPU 1000: Invalid argument/);
  t.regex(stderrOf('1000', '0'), /cannot run on CPU 1000: Invalid argument/);
});
