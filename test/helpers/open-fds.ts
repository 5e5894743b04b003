/**
 * The process's open fd count, for leak checks. Another part of the process may hold an fd for
 * a moment while a test measures (Node's thread pool reading a file, tsx reading its cache
 * directory at start-up): a baseline is taken once the count has stopped moving, and a leak is
 * an fd that stays.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openFdCount } from '../../src/native.ts';

const POLL_MS = 10;

/** The open fd count once it has been the same for `quietMs`, or what it is after `ms`. */
export async function openFdCountAtRest(quietMs = 50, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  let count = openFdCount();
  let since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await sleep(POLL_MS);
    const now = openFdCount();
    if (now !== count) [count, since] = [now, Date.now()];
  }
  return count;
}

/** The open fd count once it is back to `expected`, or what it is after `ms` (then a leak). */
export async function openFdCountSettled(expected: number, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const count = openFdCount();
    if (count === expected || Date.now() > deadline) return count;
    await sleep(POLL_MS);
  }
}
