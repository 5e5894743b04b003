/**
 * The transfer channel of SET_DEVICE_STATE_FD (spec "Migrating back-end state"): an fd that
 * behaves like a pipe. The writing end writes everything and closes; the reading end reads until
 * end of file. Both run off the event loop (libuv's thread pool) so that a front-end that reads or
 * writes only after the reply never deadlocks the session; a reader waits (bounded) for readability
 * before each read, blocking fd or not. Each function owns `fd` and closes it exactly once.
 */
import { close, read, write } from 'node:fs';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import * as native from '../native.ts';

const readAsync = promisify(read);
const writeAsync = promisify(write);
const closeAsync = promisify(close);

/** How long one read waits for the front-end before the transfer fails (the whole state is small). */
const READ_STALL_MS = 30_000;
/** Retry delay when a non-blocking write end is full. */
const WRITE_RETRY_MS = 5;
const CHUNK = 16 * 1024;

/** The error of a channel that broke, with the operation that failed. */
export class StateChannelError extends Error {
  readonly code = 'VU_ERR_STATE_CHANNEL';

  constructor(message: string) {
    super(`device state channel: ${message}`);
    this.name = 'StateChannelError';
  }
}

const isAgain = (error: unknown) => (error as NodeJS.ErrnoException).code === 'EAGAIN';

/** Writes all of `bytes` into `fd`, then closes it (the end of the state for the reader). */
export async function writeStateAndClose(fd: number, bytes: Uint8Array): Promise<void> {
  try {
    let done = 0;
    while (done < bytes.length) {
      try {
        done += (await writeAsync(fd, bytes, done, bytes.length - done)).bytesWritten;
      } catch (error) {
        if (!isAgain(error)) throw new StateChannelError(`write: ${(error as Error).message}`);
        await sleep(WRITE_RETRY_MS);
      }
    }
  } finally {
    await closeAsync(fd);
  }
}

/**
 * Reads `fd` to end of file (at most `maxBytes`), then closes it. Every read waits for the fd to be
 * readable first, at most `stallMs`: a read on a blocking fd that the front-end never writes into
 * would otherwise hold one of libuv's few pool threads for good.
 */
export async function readStateAndClose(fd: number, maxBytes: number, stallMs = READ_STALL_MS): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      if (!(await native.waitReadable(fd, stallMs))) throw new StateChannelError(`no data and no end of file for ${stallMs} ms`);
      const buffer = new Uint8Array(CHUNK);
      let n: number;
      try {
        n = (await readAsync(fd, buffer, 0, CHUNK, null)).bytesRead;
      } catch (error) {
        if (!isAgain(error)) throw new StateChannelError(`read: ${(error as Error).message}`);
        continue;
      }
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new StateChannelError(`more than ${maxBytes} bytes`);
      chunks.push(buffer.subarray(0, n));
    }
  } finally {
    await closeAsync(fd);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/** How a session moves a device state through the fd of SET_DEVICE_STATE_FD; each call owns the fd and closes it once. */
export interface StateChannel {
  writeAndClose(fd: number, bytes: Uint8Array): Promise<void>;
  readAndClose(fd: number, maxBytes: number): Promise<Uint8Array>;
}

/** The real channel: the fd is a pipe (or behaves like one). */
export const pipeStateChannel: StateChannel = { writeAndClose: writeStateAndClose, readAndClose: readStateAndClose };
