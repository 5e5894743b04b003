/**
 * Back-end state transfer (VHOST_USER_PROTOCOL_F_DEVICE_STATE, spec "Migrating back-end state"),
 * with the test front-end playing both QEMUs (QEMU 7.2 does not drive it for net): the source
 * back-end SAVEs into a pipe, the destination LOADs from one, CHECK_DEVICE_STATE says whether it
 * worked. A truncated, corrupted, wrong-version or inconsistent state is refused and changes nothing.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { decodeReply } from '../../src/protocol/decode-reply.ts';
import { DeviceStateDirection } from '../../src/protocol/payloads.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { MiniGuest } from '../helpers/mini-guest.ts';
import { createTap } from '../helpers/netns.ts';
import { GUEST_MAC, startInProcessBackend, type InProcessBackend } from '../helpers/backend-harness.ts';
import { arpRequest } from '../helpers/frames.ts';
import { startInProcessSwitch, waitUntil } from '../helpers/switch-harness.ts';
import * as native from '../../src/native.ts';

const writeAsync = promisify(write);
const TX = 1;
/** SET_DEVICE_STATE_FD reply: success, no fd of the back-end's own (bit 8). */
const OK_NO_FD = 0x100n;
const MTU_OFFSET = 10;

/** A pipe made of a FIFO: [read end (non-blocking), write end]. */
function pipe(t: ExecutionContext): [number, number] {
  const dir = mkdtempSync(join(tmpdir(), 'vu-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'fifo');
  execFileSync('mkfifo', [path]);
  const readEnd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(path, constants.O_WRONLY);
  return [readEnd, writeEnd];
}

async function setDeviceStateFd(fe: TestFrontend, direction: DeviceStateDirection, fd: number): Promise<bigint> {
  const msg = await fe.request({ request: R.SET_DEVICE_STATE_FD, transfer: { direction, phase: 0 } }, [fd]);
  return decodeReply(msg!, R.SET_DEVICE_STATE_FD);
}

function checkDeviceState(fe: TestFrontend): Promise<bigint> {
  return fe.get({ request: R.CHECK_DEVICE_STATE });
}

/** The source's part: SAVE into a pipe, read it to end of file, CHECK. */
async function save(t: ExecutionContext, fe: TestFrontend): Promise<{ bytes: Uint8Array; check: bigint }> {
  const [readEnd, writeEnd] = pipe(t);
  t.is(await setDeviceStateFd(fe, DeviceStateDirection.SAVE, writeEnd), OK_NO_FD);
  closeSync(writeEnd); // the back-end holds its own copy now; end of file comes when it closes it
  const chunks: Buffer[] = [];
  for (;;) {
    const buffer = Buffer.alloc(4096);
    let n: number;
    try {
      n = readSync(readEnd, buffer);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      if (!(await native.waitReadable(readEnd, 5000))) throw new Error('the back-end never finished writing its state');
      continue;
    }
    if (n === 0) break;
    chunks.push(buffer.subarray(0, n));
  }
  closeSync(readEnd);
  return { bytes: Buffer.concat(chunks), check: await checkDeviceState(fe) };
}

/** The destination's part: LOAD from a pipe the front-end fills and closes, then CHECK. */
async function load(t: ExecutionContext, fe: TestFrontend, bytes: Uint8Array): Promise<bigint> {
  const [readEnd, writeEnd] = pipe(t);
  t.is(await setDeviceStateFd(fe, DeviceStateDirection.LOAD, readEnd), OK_NO_FD);
  closeSync(readEnd);
  // Off the event loop: the back-end reads in this same process, and a blocking write of more than
  // the pipe holds would wait for it forever.
  for (let done = 0; done < bytes.length; ) {
    try {
      done += (await writeAsync(writeEnd, bytes, done, bytes.length - done)).bytesWritten;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPIPE') throw error;
      break; // the back-end stopped reading (a state too large): CHECK tells
    }
  }
  closeSync(writeEnd);
  return checkDeviceState(fe);
}

async function mtuOf(fe: TestFrontend): Promise<number> {
  const config = await fe.get({ request: R.GET_CONFIG, config: { offset: 0, size: 12, flags: 0, payload: new Uint8Array(12) } });
  return new DataView(config.payload.buffer, config.payload.byteOffset).getUint16(MTU_OFFSET, true);
}

/** Stops every ring as a migration source's front-end does; returns the bases. */
async function suspend(fe: TestFrontend): Promise<number[]> {
  const bases: number[] = [];
  for (let index = 0; index < fe.rings.length; index++) bases.push((await fe.get({ request: R.GET_VRING_BASE, state: { index, num: 0 } })).num);
  return bases;
}

async function connected(t: ExecutionContext, backend: InProcessBackend, ringBases?: number[]): Promise<TestFrontend> {
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  await fe.negotiate({ ringBases });
  return fe;
}

test.serial('device state: saved by one back-end, loaded into another (CHECK ok); MTU, ring bases and counters travel', async (t) => {
  const source = startInProcessBackend(t, await createTap(t));
  const destination = startInProcessBackend(t, await createTap(t));
  const src = await connected(t, source);
  await src.expectAck({ request: R.NET_SET_MTU, mtu: 1400n });
  const guest = new MiniGuest(src, 2048);
  for (let i = 0; i < 3; i++) guest.send(arpRequest(GUEST_MAC, '10.77.250.2', '10.77.250.1'));
  // The TAP is down (no namespace here): the frames count as TX errors, which is just as good a counter.
  const handled = () => source.dataPlane.counters()[0].txFrames + source.dataPlane.counters()[0].txErrors;
  for (let wait = 0; wait < 100 && handled() < 3n; wait++) await sleep(20);
  t.is(handled(), 3n);
  const counters = Object.fromEntries(Object.entries(source.dataPlane.counters()[0]).map(([k, v]) => [k, v.toString()]));

  const bases = await suspend(src);
  t.is(bases[TX], 3);
  const saved = await save(t, src);
  t.is(saved.check, 0n, 'CHECK_DEVICE_STATE after SAVE');
  const state = JSON.parse(new TextDecoder().decode(saved.bytes));
  t.log(`saved state (${saved.bytes.length} bytes): ${new TextDecoder().decode(saved.bytes)}`);
  t.like(state, { version: 2, mac: '02:00:00:00:00:01', mtu: 1400, queuePairs: 1 });
  t.deepEqual(state.stations, [], 'a TAP has no MAC table of ours');
  t.deepEqual(state.vrings, [{ index: 0, nextAvail: 0 }, { index: 1, nextAvail: 3 }]);
  t.deepEqual(state.counters, [counters]);

  // The destination front-end re-initialises the rings at the source's bases, then loads.
  const dst = await connected(t, destination, bases);
  t.is(await mtuOf(dst), 1500);
  t.is(await load(t, dst, saved.bytes), 0n, 'CHECK_DEVICE_STATE after LOAD');
  t.is(await mtuOf(dst), 1400, 'the MTU came with the state');

  // A second migration from the destination carries the counters on (the source's + its own 0).
  await suspend(dst);
  const again = JSON.parse(new TextDecoder().decode((await save(t, dst)).bytes));
  t.deepEqual(again.counters, [counters]);
  t.is(again.mtu, 1400);
});

test.serial('device state: truncated, corrupted, wrong-version and inconsistent states are refused and change nothing', async (t) => {
  const source = startInProcessBackend(t, await createTap(t));
  const destination = startInProcessBackend(t, await createTap(t));
  const src = await connected(t, source);
  await src.expectAck({ request: R.NET_SET_MTU, mtu: 1400n });
  await suspend(src);
  const good = (await save(t, src)).bytes;
  const goodText = new TextDecoder().decode(good);
  const edit = (change: (state: Record<string, unknown>) => void) => {
    const state = JSON.parse(goodText);
    change(state);
    return new TextEncoder().encode(JSON.stringify(state));
  };

  const dst = await connected(t, destination);
  const bad: [string, Uint8Array][] = [
    ['truncated', good.subarray(0, good.length - 7)],
    ['empty', new Uint8Array(0)],
    ['corrupted byte', Uint8Array.from(good, (b, i) => (i === 20 ? 0xff : b))],
    ['wrong version', edit((s) => (s.version = 3))],
    ['stations in a version-1 state', edit((s) => (s.version = 1))],
    ['a multicast station', edit((s) => (s.stations = ['01:00:5e:00:00:01']))],
    ['a station that is no MAC', edit((s) => (s.stations = ['02:00:00:00:00']))],
    ['more than 256 stations', edit((s) => (s.stations = Array.from({ length: 257 }, (_, i) => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`)))],
    ['unknown field', edit((s) => (s.extra = true))],
    ['MTU out of bounds', edit((s) => (s.mtu = 70000))],
    ['ring index out of range', edit((s) => (s.vrings = [{ index: 9, nextAvail: 0 }]))],
    ['ring base past 16 bits', edit((s) => (s.vrings = [{ index: 1, nextAvail: 65536 }]))],
    ['ring base differs from SET_VRING_BASE', edit((s) => (s.vrings = [{ index: 1, nextAvail: 5 }]))],
    ['counter not a u64', edit((s) => ((s.counters as Record<string, string>[])[0].rxFrames = '-1'))],
    ['more queue pairs than the device', edit((s) => (s.queuePairs = 2))],
    ['features never offered', edit((s) => (s.features = '0xffffffffffffffff'))],
    ['too large', new Uint8Array(70 * 1024).fill(0x20)],
  ];
  for (const [what, bytes] of bad) {
    t.is(await load(t, dst, bytes), 1n, `${what}: CHECK_DEVICE_STATE reports failure`);
    t.is(await mtuOf(dst), 1500, `${what}: nothing changed`);
  }
  t.is(await load(t, dst, good), 0n, 'the intact state still loads afterwards');
  t.is(await mtuOf(dst), 1400);
  const versionOne = edit((s) => {
    s.version = 1;
    delete s.stations;
    s.mtu = 1300;
  });
  t.is(await load(t, dst, versionOne), 0n, 'a version-1 state (before stations) still loads');
  t.is(await mtuOf(dst), 1300);
});

test.serial('device state on the switch: the MAC-table entries of the source port travel and point at the destination port at once', async (t) => {
  const sw = await startInProcessSwitch(t);
  const station = Uint8Array.of(0x02, 0x5a, 0, 0, 0, 0x42);
  const portOf = (mac: string) => sw.switchMode.macs().find((e) => e.mac === mac)?.portId;
  const newestPort = () => Math.max(...sw.switchMode.ports().map((p) => p.id));
  const src = TestFrontend.connect(sw.socketPath);
  t.teardown(() => src.close());
  await src.negotiate();
  const sourcePort = newestPort();
  new MiniGuest(src, 2048).send(arpRequest(station, '10.77.250.2', '10.77.250.1'));
  await waitUntil(() => portOf('02:5a:00:00:00:42') === sourcePort, () => `station not learned: ${JSON.stringify(sw.switchMode.macs())}`);

  const bases = await suspend(src);
  const saved = await save(t, src);
  t.is(saved.check, 0n);
  const state = JSON.parse(new TextDecoder().decode(saved.bytes));
  t.deepEqual(state.stations, ['02:5a:00:00:00:42']);

  const dst = TestFrontend.connect(sw.socketPath);
  t.teardown(() => dst.close());
  await dst.negotiate({ ringBases: bases });
  const destinationPort = newestPort();
  t.not(destinationPort, sourcePort);
  t.is(portOf('02:5a:00:00:00:42'), sourcePort, 'nothing moved it yet');
  t.is(await load(t, dst, saved.bytes), 0n);
  t.is(portOf('02:5a:00:00:00:42'), destinationPort, 'the loaded state moved the station, before any frame or RARP');
});

test.serial('device state: CHECK without a transfer fails; an unknown phase or direction is refused', async (t) => {
  const backend = startInProcessBackend(t, await createTap(t));
  const fe = await connected(t, backend);
  t.is(await checkDeviceState(fe), 1n);
  const [readEnd, writeEnd] = pipe(t);
  const msg = await fe.request({ request: R.SET_DEVICE_STATE_FD, transfer: { direction: 0, phase: 1 } }, [writeEnd]);
  t.is(decodeReply(msg!, R.SET_DEVICE_STATE_FD), 0x101n, 'phase 1 does not exist');
  const msg2 = await fe.request({ request: R.SET_DEVICE_STATE_FD, transfer: { direction: 7, phase: 0 } }, [writeEnd]);
  t.is(decodeReply(msg2!, R.SET_DEVICE_STATE_FD), 0x101n, 'direction 7 does not exist');
  closeSync(readEnd);
  closeSync(writeEnd);
  t.is(await checkDeviceState(fe), 1n);
});
