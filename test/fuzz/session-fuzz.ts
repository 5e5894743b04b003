/**
 * Fuzz cases for the session state machine: random sequences of valid and invalid requests, in two
 * modes. With the recording data plane, every fd that arrives must be closed exactly once. With the
 * real Rust data plane (a TAP device, memfd guest memory with random content, regions whose declared
 * size exceeds the memfd), the process must not crash and every fd must be closed once the
 * connection is gone. In both: onMessage never throws, at most one reply per message, none after
 * the session closed, and every reply is a well-formed reply header.
 */
import { Session } from '../../src/backend/session.ts';
import { NetDevice } from '../../src/device/net-device.ts';
import { NativeDataPlane } from '../../src/device/native-data-plane.ts';
import type { DataPlane } from '../../src/device/data-plane.ts';
import { createLogger } from '../../src/log.ts';
import { decodeHeader, VHOST_USER_REPLY_MASK } from '../../src/protocol/header.ts';
import * as native from '../../src/native.ts';
import { RecordingDataPlane } from '../helpers/recording-data-plane.ts';
import { nextMessage, setupSequence, type FdSource, type SequenceContext } from './requests.ts';
import { Rng } from './rng.ts';
import type { StateChannel } from '../../src/migration/state-channel.ts';
import { openFdCountAtRest, openFdCountSettled } from '../helpers/open-fds.ts';

const MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x42);
const QUIET = createLogger('fuzz', 'error', () => undefined);
/** Messages in one case (a connection is replaced whenever the session closes it). */
const MAX_STEPS = 60;
const RECORDING_FAILS = ['setFeatures', 'setMemTable', 'addMemRegion', 'setVringAddr', 'setVringKick', 'getVringBase', 'setVringEnable'];

interface SequenceOptions {
  rng: Rng;
  queuePairs: number;
  dataPlane: DataPlane;
  fds: FdSource;
  closeFd: (fd: number) => void;
  /** Called before each message (the recording mode arms failures here). */
  beforeMessage?: () => void;
  /** Where device state transfers go (default: the real one, on the real fd). */
  stateChannel?: StateChannel;
}

/**
 * Runs one sequence; throws when an invariant breaks. Ends with the last session torn down, and
 * returns the device state transfers its sessions started (they end asynchronously, closing
 * their fd).
 */
function runSequence({ rng, queuePairs, dataPlane, fds, closeFd, beforeMessage, stateChannel }: SequenceOptions): Promise<void>[] {
  const transfers: Promise<void>[] = [];
  const device = new NetDevice({ queuePairs, mac: MAC });
  const ctx: SequenceContext = { queueCount: device.queueCount, offeredFeatures: device.offeredFeatures, offeredProtocolFeatures: device.offeredProtocolFeatures, regions: [] };
  const connect = () => {
    const conn = { replies: [] as Uint8Array[], closed: false, session: undefined as unknown as Session };
    conn.session = new Session(device, dataPlane, {
      send: (bytes) => conn.replies.push(bytes),
      close: () => { conn.closed = true; },
    }, QUIET, closeFd, stateChannel);
    return conn;
  };
  let conn = connect();
  const setup = rng.oneIn(2) ? setupSequence(rng, ctx, fds) : [];
  const steps = setup.length + 1 + rng.below(MAX_STEPS);
  for (let step = 0; step < steps; step++) {
    beforeMessage?.();
    const msg = setup.shift() ?? nextMessage(rng, ctx, fds);
    const wasClosed = conn.closed;
    const before = conn.replies.length;
    conn.session.onMessage(msg.bytes, msg.fds);
    const sent = conn.replies.slice(before);
    const what = `step ${step}, message ${Buffer.from(msg.bytes.subarray(0, 64)).toString('hex')} with ${msg.fds.length} fds`;
    if (sent.length > 1) throw new Error(`${sent.length} replies to one message (${what})`);
    if (wasClosed && sent.length > 0) throw new Error(`a reply after the session closed (${what})`);
    for (const reply of sent) {
      if ((decodeHeader(reply).flags & VHOST_USER_REPLY_MASK) === 0) throw new Error(`reply without the REPLY flag (${what})`);
    }
    if (conn.closed) {
      // What the server does when the session closes the connection: teardown, next front-end.
      conn.session.teardown();
      if (conn.session.deviceStateTransfer) transfers.push(conn.session.deviceStateTransfer.settled);
      ctx.regions = [];
      conn = connect();
    }
  }
  conn.session.teardown();
  if (conn.session.deviceStateTransfer) transfers.push(conn.session.deviceStateTransfer.settled);
  return transfers;
}

/** One case against the recording data plane; checks that every fd is closed exactly once. */
export function recordingSessionCase(seed: bigint): void {
  const rng = new Rng(seed);
  const dataPlane = new RecordingDataPlane();
  const created: number[] = [];
  const closedBySession: number[] = [];
  const discarded: number[] = [];
  let nextFd = 1000;
  const make = () => {
    created.push(nextFd);
    return nextFd++;
  };
  runSequence({
    rng,
    queuePairs: 1 + rng.below(2),
    dataPlane,
    fds: { memfd: make, eventfd: make, discard: (fd) => discarded.push(fd) },
    closeFd: (fd) => closedBySession.push(fd),
    // The fds here are only numbers: a transfer closes its fd at once and reads a random state.
    stateChannel: {
      writeAndClose: async (fd) => void closedBySession.push(fd),
      readAndClose: async (fd, maxBytes) => {
        closedBySession.push(fd);
        return rng.bytes(rng.below(Math.min(maxBytes, 256)));
      },
    },
    beforeMessage: () => {
      if (rng.oneIn(12)) dataPlane.failNext = rng.pick(RECORDING_FAILS);
    },
  });
  const closes = new Map<number, number>();
  for (const fd of [...closedBySession, ...dataPlane.closedFds, ...discarded]) closes.set(fd, (closes.get(fd) ?? 0) + 1);
  for (const fd of created) {
    const n = closes.get(fd) ?? 0;
    if (n !== 1) throw new Error(`fd ${fd} closed ${n} times (expected exactly once)`);
  }
  if (closes.size !== created.length) throw new Error('an fd that was never received was closed');
}

/**
 * The real data plane on a TAP of its own (created on construction, gone on close()). Each case
 * must leave the process with exactly the fds it had before.
 */
export class NativeSessionFuzzer {
  readonly events: native.DeviceEvent[] = [];
  private readonly device: native.NetDevice;
  private readonly dataPlane: NativeDataPlane;

  constructor(tapName: string) {
    this.device = new native.NetDevice(tapName, 1, (event) => {
      if (this.events.length < 1000) this.events.push(event);
    });
    this.dataPlane = new NativeDataPlane(this.device);
  }

  async runCase(seed: bigint): Promise<void> {
    const rng = new Rng(seed);
    const fdsBefore = await openFdCountAtRest();
    const memfd = (bytes: number) => {
      const fd = native.memfdCreate('vu-fuzz-guest', bytes);
      // Guest memory the rings are read from: zeros or garbage (the workers must survive both).
      if (rng.oneIn(2)) new Uint8Array(native.mapShared(fd, 0, bytes)).set(rng.bytes(bytes));
      return fd;
    };
    const transfers = runSequence({
      rng,
      queuePairs: 1,
      dataPlane: this.dataPlane,
      fds: { memfd, eventfd: native.eventfdCreate, discard: native.closeFd },
      closeFd: native.closeFd,
    });
    await Promise.all(transfers); // each closes its fd when it ends
    const fdsAfter = await openFdCountSettled(fdsBefore);
    if (fdsAfter !== fdsBefore) throw new Error(`${fdsAfter - fdsBefore} fds leaked by one sequence (${fdsBefore} before, ${fdsAfter} after)`);
  }

  close(): void {
    this.device.close();
  }
}
