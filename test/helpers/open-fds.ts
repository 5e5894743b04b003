/**
 * The process's open fd count, for leak checks. Another part of the process (Node's thread pool
 * reading a file, say) may hold an fd for a moment while a test measures; a leaked fd stays.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openFdCount } from '../../src/native.ts';

/** The open fd count once it is back to `expected`, or what it is after `ms` (then a leak). */
export async function openFdCountSettled(expected: number, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const count = openFdCount();
    if (count === expected || Date.now() > deadline) return count;
    await sleep(10);
  }
}
