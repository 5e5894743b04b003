/**
 * A test front-end that plays QEMU: guest memory in a memfd it maps itself, eventfds for kicks
 * and calls, driver-side rings (driver-ring.ts), and the vhost-user conversation over a real
 * UNIX socket against the real back-end.
 */
import * as native from '../../src/native.ts';
import { encodeRequest } from '../../src/protocol/encode.ts';
import { decodeReply, decodeReplyAck } from '../../src/protocol/decode-reply.ts';
import { decodeHeader } from '../../src/protocol/header.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import type { RequestInput } from '../../src/protocol/request-types.ts';
import type { RepliedRequest, ReplyPayloads } from '../../src/protocol/reply-types.ts';
import { VhostUserProtocolFeature as P } from '../../src/protocol/protocol-features.ts';
import { VirtioFeature as F } from '../../src/protocol/virtio-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { DriverRing, ringBytes, ringLayout } from './driver-ring.ts';

/** The front-end's own virtual address of guest-physical 0 (any value works: the back-end translates). */
export const USER_BASE = 0x7f12_0000_0000n;
const REPLY_TIMEOUT_MS = 5000;

export interface FrontendOptions {
  memoryBytes?: number;
  queueSize?: number;
  queuePairs?: number;
}

interface Waiter {
  resolve: (msg: Uint8Array) => void;
  reject: (error: Error) => void;
}

export class TestFrontend {
  readonly memory: ArrayBuffer;
  readonly memfd: number;
  private isClosed = false;
  readonly rings: DriverRing[] = [];
  readonly kickFds: number[] = [];
  readonly callFds: number[] = [];
  /** Guest-physical address where frame buffers start (after the rings). */
  readonly buffersBase: number;
  private readonly connection: native.Connection;
  private readonly waiters: Waiter[] = [];
  private readonly unexpected: Uint8Array[] = [];
  closed: Promise<native.NativeError | null>;
  private nextBuffer: number;

  /** `socketFd`: a connected socket to the back-end; the front-end owns it from now on. */
  private constructor(socketFd: number, readonly options: Required<FrontendOptions>) {
    this.memfd = native.memfdCreate('vu-test-guest', options.memoryBytes);
    this.memory = native.mapShared(this.memfd, 0, options.memoryBytes);
    this.connection = new native.Connection(socketFd);
    let onClosed!: (e: native.NativeError | null) => void;
    this.closed = new Promise((resolve) => (onClosed = resolve));
    this.connection.start(
      (msg, fds) => {
        fds.forEach(native.closeFd);
        const waiter = this.waiters.shift();
        if (waiter) waiter.resolve(msg);
        else this.unexpected.push(msg);
      },
      (error) => {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`back-end closed the connection${error ? `: ${error.message}` : ''}`));
        onClosed(error);
      },
    );
    let at = 0x1000;
    for (let q = 0; q < options.queuePairs * 2; q++) {
      this.rings.push(new DriverRing(this.memory, ringLayout(at, options.queueSize)));
      at += Math.ceil(ringBytes(options.queueSize) / 4096) * 4096;
      this.kickFds.push(native.eventfdCreate());
      this.callFds.push(native.eventfdCreate());
    }
    this.buffersBase = at;
    this.nextBuffer = at;
  }

  static connect(socketPath: string, options: FrontendOptions = {}): TestFrontend {
    return TestFrontend.adopt(native.connectUnix(socketPath), options);
  }

  /** A front-end on a socket the test accepted itself (the back-end connected, with --client). */
  static adopt(socketFd: number, options: FrontendOptions = {}): TestFrontend {
    return new TestFrontend(socketFd, { memoryBytes: 8 << 20, queueSize: 256, queuePairs: 1, ...options });
  }

  /** Sends a request; resolves with the reply message if one is expected. */
  async request(input: RequestInput, fds: number[] = []): Promise<Uint8Array | undefined> {
    const bytes = encodeRequest(input);
    const expectsReply = input.needReply === true || REPLYING.has(input.request);
    const reply = expectsReply ? this.nextMessage() : undefined;
    this.connection.send(bytes, fds);
    return reply;
  }

  /** Sends raw bytes (malformed messages). */
  sendRaw(bytes: Uint8Array, fds: number[] = []): void {
    this.connection.send(bytes, fds);
  }

  nextMessage(timeoutMs = REPLY_TIMEOUT_MS): Promise<Uint8Array> {
    const early = this.unexpected.shift();
    if (early) return Promise.resolve(early);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async get<K extends RepliedRequest>(input: RequestInput & { request: K }): Promise<ReplyPayloads[K]> {
    const msg = await this.request(input);
    return decodeReply(msg!, input.request);
  }

  /** A request with NEED_REPLY; resolves with the REPLY_ACK status (0 = success). */
  async acked(input: RequestInput, fds: number[] = []): Promise<bigint> {
    const msg = await this.request({ ...input, needReply: true } as RequestInput, fds);
    return decodeReplyAck(msg!, input.request);
  }

  /** The request code of a raw reply (for tests that inspect what came back). */
  static replyCode(msg: Uint8Array): number {
    return decodeHeader(msg).request;
  }

  /**
   * The negotiation QEMU does before the guest driver runs, then the guest's: features (all
   * offered except those in `withoutFeatures`, except VHOST_F_LOG_ALL, which a front-end sets
   * only while it migrates, and except VIRTIO_F_RING_PACKED: this driver lays split rings),
   * protocol features, owner, memory table, and every ring set up, started and enabled (at
   * `ringBases`, as a migration destination is, else at 0).
   */
  async negotiate(opts: { withoutFeatures?: F[]; withoutProtocolFeatures?: P[]; ringBases?: number[] } = {}): Promise<bigint> {
    const offered = await this.get({ request: R.GET_FEATURES });
    const features = offered & ~featureMask(F.VHOST_F_LOG_ALL, F.VIRTIO_F_RING_PACKED, ...(opts.withoutFeatures ?? []));
    const offeredProtocol = await this.get({ request: R.GET_PROTOCOL_FEATURES });
    const protocol = offeredProtocol & ~featureMask(...(opts.withoutProtocolFeatures ?? []));
    await this.request({ request: R.SET_PROTOCOL_FEATURES, features: protocol });
    await this.expectAck({ request: R.SET_OWNER });
    await this.expectAck({ request: R.SET_FEATURES, features });
    await this.expectAck(
      { request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: [{ guestPhysAddr: 0n, memorySize: BigInt(this.options.memoryBytes), userspaceAddr: USER_BASE, mmapOffset: 0n }] } },
      [this.memfd],
    );
    for (let i = 0; i < this.rings.length; i++) await this.setUpRing(i, opts.ringBases?.[i] ?? 0);
    return features;
  }

  async setUpRing(index: number, base = 0): Promise<void> {
    const l = this.rings[index].layout;
    await this.expectAck({ request: R.SET_VRING_NUM, state: { index, num: l.size } });
    await this.expectAck({ request: R.SET_VRING_BASE, state: { index, num: base } });
    await this.expectAck({
      request: R.SET_VRING_ADDR,
      addr: { index, flags: 0, descUserAddr: USER_BASE + BigInt(l.descAddr), usedUserAddr: USER_BASE + BigInt(l.usedAddr), availUserAddr: USER_BASE + BigInt(l.availAddr), logGuestAddr: 0n },
    });
    await this.expectAck({ request: R.SET_VRING_CALL, file: { index, noFd: false } }, [this.callFds[index]]);
    await this.expectAck({ request: R.SET_VRING_KICK, file: { index, noFd: false } }, [this.kickFds[index]]);
    await this.expectAck({ request: R.SET_VRING_ENABLE, state: { index, num: 1 } });
  }

  /** Sends with NEED_REPLY and fails unless the back-end acks success. */
  async expectAck(input: RequestInput, fds: number[] = []): Promise<void> {
    const status = await this.acked(input, fds);
    if (status !== 0n) throw new Error(`${R[input.request]} failed (status ${status})`);
  }

  kick(index: number): void {
    native.eventfdWrite(this.kickFds[index], 1n);
  }

  /** Waits until the back-end signals the ring's call eventfd. */
  async waitCall(index: number, timeoutMs = 5000): Promise<boolean> {
    if (native.eventfdRead(this.callFds[index]) !== null) return true;
    const ready = await native.waitReadable(this.callFds[index], timeoutMs);
    if (ready) native.eventfdRead(this.callFds[index]);
    return ready;
  }

  /** Reserves `len` bytes of guest memory for buffers (simple bump allocator, 64-byte aligned). */
  alloc(len: number): number {
    const addr = this.nextBuffer;
    this.nextBuffer = Math.ceil((addr + len) / 64) * 64;
    if (this.nextBuffer > this.options.memoryBytes) throw new Error('test guest memory exhausted');
    return addr;
  }

  /** Resets the bump allocator (when all buffers were consumed). */
  resetAlloc(): void {
    this.nextBuffer = this.buffersBase;
  }

  bytes(addr: number, len: number): Uint8Array {
    return new Uint8Array(this.memory, addr, len);
  }

  /** Closes the connection and every fd; again, does nothing (a test may close before its teardown). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.connection.close();
    for (const fd of [...this.kickFds, ...this.callFds, this.memfd]) native.closeFd(fd);
    this.kickFds.length = 0;
    this.callFds.length = 0;
  }
}

/** Requests whose reply always comes (they return data). */
// SET_LOG_BASE replies (u64) when LOG_SHMFD is negotiated, which negotiate() always does.
const REPLYING = new Set<R>([
  R.GET_FEATURES, R.GET_PROTOCOL_FEATURES, R.GET_VRING_BASE, R.GET_QUEUE_NUM, R.GET_CONFIG, R.GET_MAX_MEM_SLOTS, R.GET_STATUS, R.SET_LOG_BASE,
  R.SET_DEVICE_STATE_FD, R.CHECK_DEVICE_STATE,
]);
