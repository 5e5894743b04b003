// The addon's transport and helpers, through src/native.ts, over real sockets.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openFdCountAtRest, openFdCountSettled } from './helpers/open-fds.ts';

import {
  Acceptor,
  Connection,
  closeFd,
  connectUnix,
  eventfdCreate,
  eventfdRead,
  eventfdWrite,
  isNativeError,
  listenUnix,
  mapShared,
  memfdCreate,
  NetDevice,
  Switch,
  waitReadable,
  type NativeError,
} from '../src/native.ts';

/** A vhost-user message: request, flags (version 1), size, payload. */
function message(request: number, payload: Uint8Array = new Uint8Array()): Uint8Array {
  const bytes = new Uint8Array(12 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request, true);
  view.setUint32(4, 1, true);
  view.setUint32(8, payload.length, true);
  bytes.set(payload, 12);
  return bytes;
}

interface Received {
  msg: Uint8Array;
  fds: number[];
}

/** A started connection whose messages queue up for `next()`. */
class Endpoint {
  readonly connection: Connection;
  private readonly queue: Received[] = [];
  private waiter: ((r: Received) => void) | undefined;
  readonly closed: Promise<NativeError | null>;

  constructor(fd: number) {
    this.connection = new Connection(fd);
    let onClose!: (err: NativeError | null) => void;
    this.closed = new Promise((resolve) => (onClose = resolve));
    this.connection.start((msg, fds) => {
      const waiter = this.waiter;
      this.waiter = undefined;
      if (waiter) waiter({ msg, fds });
      else this.queue.push({ msg, fds });
    }, onClose);
  }

  next(): Promise<Received> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => (this.waiter = resolve));
  }
}

/** A listening socket in a fresh directory, with an acceptor handing out accepted fds; closed (and the directory removed) at the test's teardown. */
class Server {
  readonly dir = mkdtempSync(join(tmpdir(), 'vu-native-'));
  readonly path = join(this.dir, 'vhost-user.sock');
  readonly listenFd = listenUnix(this.path, 0o600);
  private readonly accepted: number[] = [];
  private waiter: ((fd: number) => void) | undefined;
  private readonly acceptor = new Acceptor(this.listenFd, (fd) => {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter(fd);
    else this.accepted.push(fd);
  });

  accept(): Promise<number> {
    const fd = this.accepted.shift();
    if (fd !== undefined) return Promise.resolve(fd);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Connects a front-end; returns both ends, started. */
  async pair(): Promise<{ frontEnd: Endpoint; backEnd: Endpoint }> {
    const frontEnd = new Endpoint(connectUnix(this.path));
    const backEnd = new Endpoint(await this.accept());
    return { frontEnd, backEnd };
  }

  constructor(t: { teardown: (fn: () => void) => void }) {
    t.teardown(() => this.close());
  }

  private close(): void {
    this.acceptor.close();
    closeFd(this.listenFd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

test.serial('openFdCount returns to its start value after 200 connect/close cycles', async (t) => {
  const server = new Server(t);
  const start = await openFdCountAtRest();
  for (let i = 0; i < 200; i++) {
    const frontEnd = new Connection(connectUnix(server.path));
    const backEnd = new Connection(await server.accept());
    frontEnd.close();
    backEnd.close();
  }
  t.is(await openFdCountSettled(start), start);
});

test('listen, accept, connect: a message goes each way, peer credentials are ours', async (t) => {
  const server = new Server(t);
  const { frontEnd, backEnd } = await server.pair();
  frontEnd.connection.send(message(1));
  t.deepEqual((await backEnd.next()).msg, message(1));
  backEnd.connection.send(message(1, new Uint8Array(8).fill(0xff)));
  t.deepEqual((await frontEnd.next()).msg, message(1, new Uint8Array(8).fill(0xff)));
  const cred = backEnd.connection.peerCredentials();
  t.deepEqual(cred, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });

  frontEnd.connection.close();
  t.is(await backEnd.closed, null);
  backEnd.connection.close();
  t.is(await frontEnd.closed, null);
});

test('a message with two eventfds passes through and the fds work on the other side', async (t) => {
  const server = new Server(t);
  const { frontEnd, backEnd } = await server.pair();
  const kick = eventfdCreate();
  const call = eventfdCreate();
  const setVringKick = message(12, new Uint8Array(8));
  frontEnd.connection.send(setVringKick, [kick, call]);
  const { msg, fds } = await backEnd.next();
  t.deepEqual(msg, setVringKick);
  t.is(fds.length, 2);
  t.true(fds.every((fd) => fd !== kick && fd !== call));

  eventfdWrite(kick, 3n);
  t.true(await waitReadable(fds[0], 1000));
  t.is(eventfdRead(fds[0]), 3n);
  eventfdWrite(fds[1], 4n);
  t.is(eventfdRead(call), 4n);

  for (const fd of [kick, call, ...fds]) closeFd(fd);
  frontEnd.connection.close();
  backEnd.connection.close();
});

test('a message split in two writes with a delay arrives whole', async (t) => {
  const server = new Server(t);
  const { frontEnd, backEnd } = await server.pair();
  const whole = message(5, Uint8Array.from({ length: 20 }, (_, i) => i));
  frontEnd.connection.send(whole.subarray(0, 7));
  await sleep(50);
  frontEnd.connection.send(whole.subarray(7));
  t.deepEqual((await backEnd.next()).msg, whole);
  frontEnd.connection.close();
  backEnd.connection.close();
});

test('a connection stalled mid-message does not hold up another', async (t) => {
  const server = new Server(t);
  const stalled = await server.pair();
  const healthy = await server.pair();
  stalled.frontEnd.connection.send(message(1, new Uint8Array(40)).subarray(0, 20));
  for (let i = 0; i < 3; i++) {
    healthy.frontEnd.connection.send(message(i));
    t.deepEqual((await healthy.backEnd.next()).msg, message(i));
  }
  // Closing the stalled back-end wakes its blocked reader: a clean close, not an error.
  stalled.backEnd.connection.close();
  t.is(await stalled.backEnd.closed, null);
  for (const { frontEnd, backEnd } of [stalled, healthy]) {
    frontEnd.connection.close();
    backEnd.connection.close();
  }
});

test('a header announcing more than 4096 payload bytes closes with VU_ERR_MSG_TOO_LARGE', async (t) => {
  const server = new Server(t);
  const { frontEnd, backEnd } = await server.pair();
  const header = message(1);
  new DataView(header.buffer).setUint32(8, 4097, true);
  frontEnd.connection.send(header);
  const err = await backEnd.closed;
  t.true(isNativeError(err, 'VU_ERR_MSG_TOO_LARGE'));
  frontEnd.connection.close();
  backEnd.connection.close();
});

test('sending to a peer that does not read eventually throws EAGAIN', async (t) => {
  const server = new Server(t);
  const frontEndFd = connectUnix(server.path);
  const backEnd = new Connection(await server.accept());
  const reply = message(1, new Uint8Array(4096));
  const err = t.throws(() => {
    for (let i = 0; i < 100_000; i++) backEnd.send(reply);
  });
  t.true(isNativeError(err, 'VU_ERR_SOCKET'));
  t.like(err as NativeError, { errnoName: 'EAGAIN', syscall: 'sendmsg' });
  backEnd.close();
  closeFd(frontEndFd);
});

test('connect errors carry errno so callers can retry', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vu-native-'));
  const err = t.throws(() => connectUnix(join(dir, 'absent.sock')));
  t.like(err as NativeError, { code: 'VU_ERR_SOCKET', errnoName: 'ENOENT', syscall: 'connect' });
  rmSync(dir, { recursive: true });
});

test('closing a connection from inside onMessage ends it cleanly', async (t) => {
  const server = new Server(t);
  const frontEnd = new Endpoint(connectUnix(server.path));
  const backEnd = new Connection(await server.accept());
  const closed = new Promise<NativeError | null>((resolve) => {
    backEnd.start(() => backEnd.close(), resolve);
  });
  frontEnd.connection.send(message(1));
  frontEnd.connection.send(message(2));
  t.is(await closed, null);
  t.is(await frontEnd.closed, null);
  frontEnd.connection.close();
});

test('after Acceptor.close() no connection is delivered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vu-native-'));
  const path = join(dir, 'vhost-user.sock');
  const listenFd = listenUnix(path, 0o600);
  let delivered = 0;
  const acceptor = new Acceptor(listenFd, (fd) => {
    delivered++;
    closeFd(fd);
  });
  acceptor.close();
  acceptor.close();
  const lateFd = connectUnix(path); // queued by the kernel, never accepted
  await sleep(50);
  t.is(delivered, 0);
  closeFd(lateFd);
  closeFd(listenFd);
  rmSync(dir, { recursive: true });
});

test('memfd + mapShared: bytes written via one mapping are visible via another', (t) => {
  const fd = memfdCreate('guest-ram', 2 * 4096);
  const whole = new Uint8Array(mapShared(fd, 0, 2 * 4096));
  const secondPage = new Uint8Array(mapShared(fd, 4096, 4096));
  closeFd(fd);
  whole[4096 + 10] = 0xab;
  t.is(secondPage[10], 0xab);
  secondPage[0] = 0xcd;
  t.is(whole[4096], 0xcd);
});

test('eventfd: writes add up, a read resets, an empty read is null', async (t) => {
  const fd = eventfdCreate();
  t.is(eventfdRead(fd), null);
  t.false(await waitReadable(fd, 20));
  eventfdWrite(fd, 2n);
  eventfdWrite(fd, 40n);
  t.is(eventfdRead(fd), 42n);
  t.is(eventfdRead(fd), null);
  closeFd(fd);
});

test('bad arguments throw VU_ERR_INVALID_ARG', (t) => {
  t.like(t.throws(() => closeFd(-1)) as NativeError, { code: 'VU_ERR_INVALID_ARG' });
  t.like(t.throws(() => eventfdWrite(0, 1 as unknown as bigint)) as NativeError, { code: 'VU_ERR_INVALID_ARG' });
});

test('a native object given where another class is expected throws instead of being read as that class', (t) => {
  const segment = new Switch(1500, 300);
  const port = new NetDevice(segment, 'p0', () => {}, 0);
  t.teardown(() => {
    port.close();
    segment.close();
  });
  // A NetDevice where the Switch goes: before type tags this read the device as a switch (SIGSEGV).
  const error = t.throws(() => new NetDevice(port as unknown as Switch, 'p1', () => {}, 0)) as NativeError;
  t.is(error.code, 'VU_ERR_INVALID_ARG');
  t.is(error.message, 'not a Switch object');
  t.like(t.throws(() => new NetDevice({} as Switch, 'p1', () => {}, 0)) as NativeError, { code: 'VU_ERR_INVALID_ARG' });
  // The real one still serves.
  const other = new NetDevice(segment, 'p1', () => {}, 0);
  other.close();
});
