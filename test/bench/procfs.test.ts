/**
 * The bench's /proc readers: a thread's name may hold spaces and parentheses (QEMU's vCPU threads
 * are `CPU 0/TCG`), and CPU time is read per thread by name.
 */
import test from 'ava';
import { cpuSeconds, parseStat, threadCpuSeconds } from '../../bench/lib/procfs.ts';

// utime 250 and stime 50 ticks (fields 14 and 15); the rest as the kernel prints them.
const statLine = (comm: string) => `4242 (${comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 500 1000 100 18446744073709551615 0 0 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0`;

test('a stat line gives the thread name, spaces and parentheses included, and utime + stime', (t) => {
  t.deepEqual(parseStat(statLine('CPU 0/TCG')), { comm: 'CPU 0/TCG', cpuSeconds: 3 });
  t.deepEqual(parseStat(statLine('a) (b')), { comm: 'a) (b', cpuSeconds: 3 });
});

test('CPU time is summed over the threads whose name matches, none when no name does', (t) => {
  const until = performance.now() + 150;
  while (performance.now() < until); // burn some CPU on this (the main) thread
  const all = threadCpuSeconds(process.pid, /.*/);
  t.true(all > 0);
  // The process's own figure also counts threads that have ended, so it is not less (give or take
  // the kernel's rounding of each thread's time to ticks).
  t.true(all <= cpuSeconds(process.pid) + 0.05);
  t.is(threadCpuSeconds(process.pid, /^no thread is called this$/), 0);
});
