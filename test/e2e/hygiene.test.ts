/**
 * Resource hygiene end to end: 1,000 front-ends connect to the real back-end (in this process, on a
 * TAP), negotiate (memfd guest memory, every ring set up and started with kick and call eventfds)
 * and go away — some cleanly, some in the middle of a message (half a header; a header whose
 * payload never comes, with fds attached), some without waiting for their replies. Afterwards the
 * process has exactly the fds it started with and no guest memory mapped.
 *
 * The front-end here does not map guest memory itself (rings stay zeroed, i.e. empty), so every
 * mapping of the memfd in /proc/self/maps is the back-end's. Other mappings are counted in the
 * mmap area (from 0x7000_0000_0000 up: libc, thread stacks, malloc arenas, guest memory); V8 puts
 * its 256 KiB heap pages at addresses of its own choosing below it and keeps them as the JS heap
 * grows. glibc creates malloc arenas (two mappings each, at most 8 per CPU) when threads contend,
 * at any time: their mappings are allowed to appear, nothing else is — a thread or mapping leaked
 * per connection would add a thousand.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import * as native from '../../src/native.ts';
import { encodeRequest } from '../../src/protocol/encode.ts';
import { decodeReplyAck } from '../../src/protocol/decode-reply.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import type { RequestInput } from '../../src/protocol/request-types.ts';
import { VirtioFeature as F } from '../../src/protocol/virtio-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { decodeReply } from '../../src/protocol/decode-reply.ts';
import { openFdCountAtRest, openFdCountSettled } from '../helpers/open-fds.ts';
import { startInProcessBackend } from '../helpers/backend-harness.ts';
import { createTap } from '../helpers/netns.ts';
import { ringLayout } from '../helpers/driver-ring.ts';

const CYCLES = 1000;
const WARM_UP = 20;
const MEMFD_NAME = 'vu-hygiene-guest';
const MEMORY_BYTES = 1 << 20;
const QUEUE_SIZE = 256;
const USER_BASE = 0x7f55_0000_0000n;

const MMAP_AREA = 0x7000_0000_0000n;
/** glibc's arena_max (8 per CPU) arenas of two mappings each. */
const ARENA_MAPPINGS = 2 * 8 * cpus().length;

/** Mappings of the guest memfd, and the number of mappings in the mmap area. */
function mappings(): { guest: number; count: number } {
  const out = { guest: 0, count: 0 };
  for (const line of readFileSync('/proc/self/maps', 'utf8').trimEnd().split('\n')) {
    if (line.includes(`memfd:${MEMFD_NAME}`)) out.guest++;
    if (BigInt(`0x${line.split('-')[0]}`) >= MMAP_AREA) out.count++;
  }
  return out;
}

function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}

/** A bare front-end: a Connection, a queue of replies, nothing mapped. */
class BareFrontend {
  private readonly connection: native.Connection;
  private readonly replies: Uint8Array[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(socketPath: string) {
    this.connection = new native.Connection(native.connectUnix(socketPath));
    this.connection.start(
      (msg, fds) => {
        fds.forEach(native.closeFd);
        this.replies.push(msg);
        this.wake?.();
      },
      () => {
        this.closed = true;
        this.wake?.();
      },
    );
  }

  send(input: RequestInput, fds: number[] = []): void {
    this.connection.send(encodeRequest(input), fds);
  }

  sendRaw(bytes: Uint8Array, fds: number[] = []): void {
    this.connection.send(bytes, fds);
  }

  async reply(): Promise<Uint8Array> {
    const deadline = Date.now() + 5000;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('the back-end closed the connection');
      if (Date.now() > deadline) throw new Error('no reply within 5 s');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.replies.shift()!;
  }

  /** Sends with NEED_REPLY and fails unless the back-end acks success. */
  async ack(input: RequestInput, fds: number[] = []): Promise<void> {
    this.send({ ...input, needReply: true } as RequestInput, fds);
    const status = decodeReplyAck(await this.reply(), input.request);
    if (status !== 0n) throw new Error(`${R[input.request]} failed (status ${status})`);
  }

  close(): void {
    this.connection.close();
  }
}

/** Sends an fd-carrying request, then closes our copy (the back-end has its own now). */
async function ackWithFd(fe: BareFrontend, input: RequestInput, fd: number): Promise<void> {
  try {
    await fe.ack(input, [fd]);
  } finally {
    native.closeFd(fd);
  }
}

/** QEMU's negotiation with every ring started: the state a disconnect must fully undo. */
async function negotiate(fe: BareFrontend): Promise<void> {
  fe.send({ request: R.GET_FEATURES });
  const offered = decodeReply(await fe.reply(), R.GET_FEATURES);
  fe.send({ request: R.GET_PROTOCOL_FEATURES });
  const protocol = decodeReply(await fe.reply(), R.GET_PROTOCOL_FEATURES);
  fe.send({ request: R.SET_PROTOCOL_FEATURES, features: protocol });
  await fe.ack({ request: R.SET_OWNER });
  await fe.ack({ request: R.SET_FEATURES, features: offered & ~featureMask(F.VHOST_F_LOG_ALL) });
  const region = { guestPhysAddr: 0n, memorySize: BigInt(MEMORY_BYTES), userspaceAddr: USER_BASE, mmapOffset: 0n };
  await ackWithFd(fe, { request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: [region] } }, native.memfdCreate(MEMFD_NAME, MEMORY_BYTES));
  for (let index = 0; index < 2; index++) {
    const l = ringLayout(0x1000 + index * 0x10000, QUEUE_SIZE);
    await fe.ack({ request: R.SET_VRING_NUM, state: { index, num: QUEUE_SIZE } });
    await fe.ack({ request: R.SET_VRING_BASE, state: { index, num: 0 } });
    await fe.ack({ request: R.SET_VRING_ADDR, addr: { index, flags: 0, descUserAddr: USER_BASE + BigInt(l.descAddr), availUserAddr: USER_BASE + BigInt(l.availAddr), usedUserAddr: USER_BASE + BigInt(l.usedAddr), logGuestAddr: 0n } });
    await ackWithFd(fe, { request: R.SET_VRING_CALL, file: { index, noFd: false } }, native.eventfdCreate());
    await ackWithFd(fe, { request: R.SET_VRING_KICK, file: { index, noFd: false } }, native.eventfdCreate());
    await fe.ack({ request: R.SET_VRING_ENABLE, state: { index, num: 1 } });
  }
}

/** A second region (ADD_MEM_REG / REM_MEM_REG), past the first in both address spaces. */
const EXTRA_REGION = { guestPhysAddr: 0x1000_0000n, memorySize: 0x10000n, userspaceAddr: USER_BASE + 0x1000_0000n, mmapOffset: 0n };

/** Replaces ring 0's kick and call fds, adds a region and removes it again. */
async function churn(fe: BareFrontend, memfdName = MEMFD_NAME): Promise<void> {
  await ackWithFd(fe, { request: R.SET_VRING_CALL, file: { index: 0, noFd: false } }, native.eventfdCreate());
  await ackWithFd(fe, { request: R.SET_VRING_KICK, file: { index: 0, noFd: false } }, native.eventfdCreate());
  await ackWithFd(fe, { request: R.ADD_MEM_REG, memReg: { padding: 0n, region: EXTRA_REGION } }, native.memfdCreate(memfdName, Number(EXTRA_REGION.memorySize)));
  await fe.ack({ request: R.REM_MEM_REG, memReg: { padding: 0n, region: EXTRA_REGION } });
}

/** How a front-end leaves. */
type Ending = 'clean' | 'after-churn' | 'half-header' | 'payload-never-comes' | 'replies-unread';

function endingOf(cycle: number): Ending {
  return (['clean', 'after-churn', 'half-header', 'payload-never-comes', 'replies-unread'] as const)[cycle % 5];
}

async function cycle(socketPath: string, ending: Ending): Promise<void> {
  const fe = new BareFrontend(socketPath);
  try {
    await negotiate(fe);
    if (ending === 'after-churn') {
      await churn(fe);
    } else if (ending === 'half-header') {
      fe.sendRaw(encodeRequest({ request: R.GET_FEATURES }).subarray(0, 6));
    } else if (ending === 'payload-never-comes') {
      // A SET_MEM_TABLE header and 10 of its 40 payload bytes, with the region's fd attached.
      const whole = encodeRequest({ request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: [{ guestPhysAddr: 0n, memorySize: 4096n, userspaceAddr: 0n, mmapOffset: 0n }] } });
      const memfd = native.memfdCreate(MEMFD_NAME, 4096);
      fe.sendRaw(whole.subarray(0, 22), [memfd]);
      native.closeFd(memfd);
    } else if (ending === 'replies-unread') {
      for (let i = 0; i < 8; i++) fe.send({ request: R.GET_FEATURES });
    }
  } finally {
    fe.close();
  }
}

/**
 * Reads the back-end's log as it goes: counts disconnects (and those mid-message), keeps the first
 * 50 warnings and errors for the test log, drops the rest (1,000 connections' worth helps nobody).
 */
class LogWatch {
  disconnects = 0;
  cutMidMessage = 0;
  readonly kept: string[] = [];

  constructor(private readonly logLines: string[]) {}

  private drain(): void {
    for (const line of this.logLines.splice(0)) {
      if (line.includes('front-end disconnected')) {
        this.disconnects++;
        if (line.includes('bytes into a')) this.cutMidMessage++;
      } else if (/ (warn|error) /.test(line) && this.kept.length < 50) {
        this.kept.push(line);
      }
    }
  }

  /** Waits until the back-end has handled `count` disconnects (it serves one front-end at a time). */
  async disconnected(count: number): Promise<void> {
    const deadline = Date.now() + 5000;
    for (this.drain(); this.disconnects < count; this.drain()) {
      if (Date.now() > deadline) throw new Error(`the back-end did not notice disconnect ${count}`);
      await sleep(1);
    }
  }
}

test.serial(`${CYCLES} connect → negotiate → disconnect cycles (some cut mid-message) leave no fd and no mapping behind`, async (t) => {
  const tap = await createTap(t);
  const backend = startInProcessBackend(t, tap);
  const watch = new LogWatch(backend.logLines);
  // Runs before the harness's teardown, which logs what is left in logLines.
  t.teardown(() => void backend.logLines.splice(0, Infinity, ...watch.kept));
  let handled = 0;
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await cycle(backend.socketPath, endingOf(handled));
      await watch.disconnected(++handled);
    }
  };
  await run(WARM_UP);
  const fdsBefore = await openFdCountAtRest();
  const mapsBefore = mappings();
  const threadsBefore = threadCount();
  t.is(mapsBefore.guest, 0, 'no guest memory mapped between connections');
  const started = Date.now();
  await run(CYCLES - WARM_UP);
  const fdsAfter = await openFdCountSettled(fdsBefore);
  const mapsAfter = mappings();
  const threadsAfter = threadCount();
  t.log(`${CYCLES - WARM_UP} cycles in ${Date.now() - started} ms; fds ${fdsBefore} → ${fdsAfter}; threads ${threadsBefore} → ${threadsAfter}; mmap-area mappings ${mapsBefore.count} → ${mapsAfter.count}`);
  t.is(fdsAfter, fdsBefore, 'open fds back to where they were');
  t.is(mapsAfter.guest, 0, 'every guest memory mapping gone');
  t.is(threadsAfter, threadsBefore, 'every reader and worker thread gone');
  t.true(mapsAfter.count - mapsBefore.count <= ARENA_MAPPINGS, `mappings ${mapsBefore.count} → ${mapsAfter.count}: more than new malloc arenas`);
  t.deepEqual(backend.events.filter((e) => e.kind === 'fault'), [], 'empty rings are not a fault');
  t.true(watch.cutMidMessage >= (2 * CYCLES) / 5 - 1, `${watch.cutMidMessage} front-ends seen leaving mid-message`);
  // Still serving; and the measurement does see a negotiated front-end's guest memory and fds.
  const fe = new BareFrontend(backend.socketPath);
  // One round trip first: only then has the back-end surely accepted the connection (its fd counts).
  fe.send({ request: R.GET_FEATURES });
  await fe.reply();
  const fdsConnected = await openFdCountAtRest();
  await negotiate(fe);
  t.true(mappings().guest >= 1, 'guest memory is visible while mapped');
  t.true(native.openFdCount() > fdsAfter, 'its fds are visible while open');
  const fdsNegotiated = await openFdCountAtRest();
  await churn(fe, 'vu-hygiene-extra');
  t.is(await openFdCountSettled(fdsNegotiated), fdsNegotiated, 'replaced kick/call fds and the added region\'s fd are closed');
  t.false(readFileSync('/proc/self/maps', 'utf8').includes('memfd:vu-hygiene-extra'), 'REM_MEM_REG unmaps the region');
  await fe.ack({ request: R.RESET_OWNER });
  t.is(mappings().guest, 0, 'RESET_OWNER unmaps guest memory');
  t.is(await openFdCountSettled(fdsConnected), fdsConnected, 'RESET_OWNER closes every ring fd');
  fe.close();
  await watch.disconnected(++handled);
  t.is(mappings().guest, 0);
});
