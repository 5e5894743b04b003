/**
 * Random request sequences for the session fuzzer: mostly plausible requests (fields biased to
 * valid values and to the edges: region ends, sizes past the file, queue indices one too far),
 * sometimes with the wrong number of fds, sometimes a mutated or random message. Fds come from an
 * FdSource: real memfds/eventfds for the native data plane, plain numbers for the recording one.
 */
import { encodeRequest } from '../../src/protocol/encode.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import type { RequestInput } from '../../src/protocol/request-types.ts';
import type { MemoryRegion } from '../../src/protocol/payloads.ts';
import { MAX_QUEUE_SIZE } from '../../src/device/limits.ts';
import { hostileMessage } from './mutate.ts';
import type { Rng } from './rng.ts';

const PAGE = 4096;
/** Front-end virtual addresses of region i start at USER_BASE + i * REGION_STRIDE. */
const USER_BASE = 0x7f00_0000_0000n;
const REGION_STRIDE = 0x10_0000n;

export interface FdSource {
  /** A memfd of `bytes` bytes (random or zero content). */
  memfd(bytes: number): number;
  eventfd(): number;
  /** Closes an fd that was made but is not sent after all. */
  discard(fd: number): void;
}

/** What the generator remembers of the sequence so far, to aim at plausible values. */
export interface SequenceContext {
  queueCount: number;
  offeredFeatures: bigint;
  offeredProtocolFeatures: bigint;
  /** Regions announced so far (SET_MEM_TABLE / ADD_MEM_REG), as declared. */
  regions: MemoryRegion[];
}

export interface FuzzMessage {
  bytes: Uint8Array;
  fds: number[];
}

function maybe<T>(rng: Rng, likely: () => T, edge: () => T, oneIn = 5): T {
  return rng.oneIn(oneIn) ? edge() : likely();
}

/** A region backed by a fresh memfd; its declared size sometimes exceeds the file (a lie). */
function region(rng: Rng, fds: FdSource, slot: number): { region: MemoryRegion; fd: number } {
  const fileBytes = PAGE * (1 + rng.below(8));
  const fd = fds.memfd(fileBytes);
  const mmapOffset = BigInt(maybe(rng, () => 0, () => rng.pick([PAGE, fileBytes, fileBytes + PAGE, rng.below(fileBytes)])));
  const honest = BigInt(fileBytes) - mmapOffset;
  const lie = () => BigInt.asUintN(64, rng.pick([honest + 1n, honest + BigInt(PAGE), 1n << 40n, 0n, rng.u64()]));
  const memorySize = maybe(rng, () => (honest > 0n ? honest : 1n), lie, 3);
  const r: MemoryRegion = {
    guestPhysAddr: maybe(rng, () => BigInt(slot) * REGION_STRIDE, () => rng.u64()),
    memorySize,
    userspaceAddr: maybe(rng, () => USER_BASE + BigInt(slot) * REGION_STRIDE, () => rng.pick([0n, rng.u64(), USER_BASE])),
    mmapOffset,
  };
  return { region: r, fd };
}

/** A front-end address in (or just past) a known region, 16-byte aligned; or anything. */
function ringAddr(rng: Rng, ctx: SequenceContext): bigint {
  if (ctx.regions.length === 0 || rng.oneIn(6)) return rng.oneIn(2) ? rng.u64() : USER_BASE;
  const r = rng.pick(ctx.regions);
  const size = r.memorySize > 0n && r.memorySize < 1n << 20n ? r.memorySize : BigInt(PAGE);
  return r.userspaceAddr + (BigInt(rng.below(Number(size) + 64)) & ~15n);
}

function queueIndex(rng: Rng, ctx: SequenceContext): number {
  return maybe(rng, () => rng.below(ctx.queueCount), () => rng.pick([ctx.queueCount, 255, rng.below(2 ** 32)]), 8);
}

function features(rng: Rng, offered: bigint): bigint {
  return maybe(rng, () => offered & rng.u64(), () => rng.u64(), 6) | (rng.oneIn(2) ? offered : 0n);
}

/** One plausible request with the fds it should carry. */
function plausible(rng: Rng, ctx: SequenceContext, fds: FdSource): { input: RequestInput; fds: number[] } {
  const index = queueIndex(rng, ctx);
  const none = (input: RequestInput) => ({ input, fds: [] as number[] });
  const vringFile = (request: R.SET_VRING_KICK | R.SET_VRING_CALL | R.SET_VRING_ERR) => {
    const noFd = rng.oneIn(5);
    return { input: { request, file: { index: index & 0xff, noFd } } as RequestInput, fds: noFd ? [] : [fds.eventfd()] };
  };
  switch (rng.below(24)) {
    case 0: return none({ request: R.GET_FEATURES });
    case 1: return none({ request: R.SET_FEATURES, features: features(rng, ctx.offeredFeatures) });
    case 2: return none({ request: R.GET_PROTOCOL_FEATURES });
    case 3: return none({ request: R.SET_PROTOCOL_FEATURES, features: features(rng, ctx.offeredProtocolFeatures) });
    case 4: return none({ request: rng.oneIn(4) ? R.RESET_OWNER : R.SET_OWNER });
    case 5:
    case 6: {
      const count = rng.below(4);
      const made = Array.from({ length: count }, (_, i) => region(rng, fds, i));
      ctx.regions = made.map((m) => m.region);
      return { input: { request: R.SET_MEM_TABLE, memTable: { numRegions: count, padding: 0, regions: ctx.regions } }, fds: made.map((m) => m.fd) };
    }
    case 7: {
      const num = maybe(rng, () => 1 << rng.below(9), () => rng.pick([0, 3, MAX_QUEUE_SIZE, MAX_QUEUE_SIZE * 2, rng.below(2 ** 32)]));
      return none({ request: R.SET_VRING_NUM, state: { index, num } });
    }
    case 8:
    case 9: {
      const addr = { index, flags: rng.oneIn(8) ? rng.below(4) : 0, descUserAddr: ringAddr(rng, ctx), availUserAddr: ringAddr(rng, ctx), usedUserAddr: ringAddr(rng, ctx), logGuestAddr: 0n };
      return none({ request: R.SET_VRING_ADDR, addr });
    }
    case 10: return none({ request: R.SET_VRING_BASE, state: { index, num: maybe(rng, () => rng.below(0x10000), () => rng.below(2 ** 32)) } });
    case 11: return none({ request: R.GET_VRING_BASE, state: { index, num: 0 } });
    case 12:
    case 13: return vringFile(R.SET_VRING_KICK);
    case 14: return vringFile(R.SET_VRING_CALL);
    case 15: return vringFile(R.SET_VRING_ERR);
    case 16: return none({ request: R.SET_VRING_ENABLE, state: { index, num: maybe(rng, () => rng.below(2), () => rng.below(2 ** 32)) } });
    case 17: return none(rng.pick<RequestInput>([{ request: R.GET_QUEUE_NUM }, { request: R.GET_MAX_MEM_SLOTS }, { request: R.GET_STATUS }, { request: R.SET_STATUS, status: BigInt(rng.below(512)) }]));
    case 18: return none({ request: R.NET_SET_MTU, mtu: maybe(rng, () => BigInt(68 + rng.below(9000)), () => rng.u64()) });
    case 19: {
      const size = rng.below(17);
      return none({ request: rng.oneIn(4) ? R.SET_CONFIG : R.GET_CONFIG, config: { offset: maybe(rng, () => rng.below(24), () => rng.below(300)), size, flags: 0, payload: new Uint8Array(size) } });
    }
    case 20:
    case 21: {
      const made = region(rng, fds, ctx.regions.length + rng.below(2));
      ctx.regions.push(made.region);
      return { input: { request: R.ADD_MEM_REG, memReg: { padding: 0n, region: made.region } }, fds: [made.fd] };
    }
    case 22: {
      const known = ctx.regions.length > 0 && !rng.oneIn(4) ? rng.pick(ctx.regions) : { guestPhysAddr: rng.u64(), memorySize: rng.u64(), userspaceAddr: rng.u64(), mmapOffset: 0n };
      return none({ request: R.REM_MEM_REG, memReg: { padding: 0n, region: known } });
    }
    default: return none(rng.pick<RequestInput>([{ request: R.SEND_RARP, mac: rng.bytes(6) }, { request: R.RESET_DEVICE }, { request: R.SET_VRING_ENDIAN, state: { index, num: 0 } }]));
  }
}

/**
 * The next message of a sequence: 8 in 10 a plausible request (asking for a REPLY_ACK half the
 * time; 1 in 10 of those with one fd too many or too few), else a mutated or random message.
 */
export function nextMessage(rng: Rng, ctx: SequenceContext, fds: FdSource): FuzzMessage {
  if (rng.oneIn(5)) {
    const { bytes, fdCount } = hostileMessage(rng);
    return { bytes, fds: Array.from({ length: Math.min(fdCount, 4) }, () => fds.eventfd()) };
  }
  const { input, fds: attached } = plausible(rng, ctx, fds);
  const bytes = encodeRequest({ ...input, needReply: rng.oneIn(2) } as RequestInput);
  if (rng.oneIn(10)) {
    if (attached.length > 0 && rng.oneIn(2)) fds.discard(attached.pop()!);
    else attached.push(fds.eventfd());
  }
  return { bytes, fds: attached };
}

/**
 * A front-end that sets the device up properly first (features, one honest region of random
 * content, every ring placed inside it and started), so the random requests that follow hit
 * running workers reading garbage rings, not only a device that never got going.
 */
export function setupSequence(rng: Rng, ctx: SequenceContext, fds: FdSource): FuzzMessage[] {
  const bytes = 16 * PAGE;
  const memfd = fds.memfd(bytes);
  ctx.regions = [{ guestPhysAddr: 0n, memorySize: BigInt(bytes), userspaceAddr: USER_BASE, mmapOffset: 0n }];
  const out: FuzzMessage[] = [
    { bytes: encodeRequest({ request: R.SET_FEATURES, features: features(rng, ctx.offeredFeatures) }), fds: [] },
    { bytes: encodeRequest({ request: R.SET_OWNER }), fds: [] },
    { bytes: encodeRequest({ request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: ctx.regions } }), fds: [memfd] },
  ];
  for (let index = 0; index < Math.min(ctx.queueCount, 4); index++) {
    const at = USER_BASE + BigInt(index * 3 * PAGE);
    out.push(
      { bytes: encodeRequest({ request: R.SET_VRING_NUM, state: { index, num: 1 << rng.below(7) } }), fds: [] },
      { bytes: encodeRequest({ request: R.SET_VRING_ADDR, addr: { index, flags: 0, descUserAddr: at, availUserAddr: at + BigInt(PAGE), usedUserAddr: at + BigInt(2 * PAGE), logGuestAddr: 0n } }), fds: [] },
      { bytes: encodeRequest({ request: R.SET_VRING_BASE, state: { index, num: rng.below(0x10000) } }), fds: [] },
      { bytes: encodeRequest({ request: R.SET_VRING_CALL, file: { index, noFd: false } }), fds: [fds.eventfd()] },
      { bytes: encodeRequest({ request: R.SET_VRING_KICK, file: { index, noFd: false } }), fds: [fds.eventfd()] },
      { bytes: encodeRequest({ request: R.SET_VRING_ENABLE, state: { index, num: 1 } }), fds: [] },
    );
  }
  return out;
}
