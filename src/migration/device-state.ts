/**
 * The back-end state of one port that travels with a live migration (VHOST_USER_PROTOCOL_F_DEVICE_STATE,
 * spec "Migrating back-end state"): a plain, versioned value, separate from the live session, in
 * JSON (bigints as strings). The source front-end carries the bytes; they are as untrusted as any
 * message payload: decodeDeviceState() checks version, shape and bounds before anything is applied.
 *
 * Version 1:
 *   { "version": 1, "mac": "02:00:00:00:00:01", "mtu": 1500, "queuePairs": 1,
 *     "features": "0x…",                         // virtio features the driver acked on the source
 *     "vrings": [{ "index": 0, "nextAvail": 17 }, …],   // rings stopped by GET_VRING_BASE
 *     "counters": [{ "rxFrames": "12", … }, …] } // one entry per queue pair, totals so far
 */
import type { QueuePairCounters } from '../device/data-plane.ts';
import { formatMac, parseMac, type MacAddress } from '../device/mac.ts';
import { MAX_MTU, MAX_QUEUE_PAIRS, MIN_MTU } from '../device/limits.ts';

export const DEVICE_STATE_VERSION = 1;

/** The most state bytes a LOAD accepts: far above any real state (a few hundred bytes per queue pair). */
export const MAX_DEVICE_STATE_BYTES = 64 * 1024;

/** Where a stopped split ring resumes: the next avail entry (every taken chain was used before it stopped). */
export interface VringState {
  index: number;
  nextAvail: number;
}

export interface DeviceState {
  version: typeof DEVICE_STATE_VERSION;
  mac: MacAddress;
  mtu: number;
  queuePairs: number;
  features: bigint;
  vrings: VringState[];
  counters: QueuePairCounters[];
}

/** A state that cannot be loaded: wrong version, wrong shape, values out of bounds. Means a broken or hostile source. */
export class DeviceStateError extends Error {
  readonly code = 'VU_ERR_BAD_DEVICE_STATE';

  constructor(message: string) {
    super(`device state: ${message}`);
    this.name = 'DeviceStateError';
  }
}

const COUNTER_NAMES = ['rxFrames', 'rxBytes', 'rxDroppedNoBuffer', 'rxTruncated', 'txFrames', 'txBytes', 'txDropped', 'txErrors'] as const satisfies readonly (keyof QueuePairCounters)[];
const STATE_KEYS = ['version', 'mac', 'mtu', 'queuePairs', 'features', 'vrings', 'counters'];
const U64_MAX = (1n << 64n) - 1n;

export function encodeDeviceState(state: DeviceState): Uint8Array {
  const json = {
    version: state.version,
    mac: formatMac(state.mac),
    mtu: state.mtu,
    queuePairs: state.queuePairs,
    features: `0x${state.features.toString(16)}`,
    vrings: state.vrings.map(({ index, nextAvail }) => ({ index, nextAvail })),
    counters: state.counters.map((c) => Object.fromEntries(COUNTER_NAMES.map((name) => [name, c[name].toString()]))),
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

/** Parses and checks a state; throws DeviceStateError on anything but a well-formed version-1 state. */
export function decodeDeviceState(bytes: Uint8Array): DeviceState {
  if (bytes.length > MAX_DEVICE_STATE_BYTES) throw new DeviceStateError(`${bytes.length} bytes, more than ${MAX_DEVICE_STATE_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new DeviceStateError(`not JSON (${(error as Error).message})`);
  }
  const o = object(value, 'the state', STATE_KEYS);
  if (o.version !== DEVICE_STATE_VERSION) throw new DeviceStateError(`version ${JSON.stringify(o.version)}, this back-end reads version ${DEVICE_STATE_VERSION}`);
  if (typeof o.mac !== 'string') throw new DeviceStateError('mac is not a string');
  let mac: MacAddress;
  try {
    mac = parseMac(o.mac);
  } catch (error) {
    throw new DeviceStateError(`mac: ${(error as Error).message}`);
  }
  const mtu = integer(o.mtu, 'mtu', MIN_MTU, MAX_MTU);
  const queuePairs = integer(o.queuePairs, 'queuePairs', 1, MAX_QUEUE_PAIRS);
  if (typeof o.features !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(o.features)) throw new DeviceStateError('features is not a hex u64 like "0x130af8267"');
  const features = BigInt(o.features);

  if (!Array.isArray(o.vrings) || o.vrings.length > queuePairs * 2) throw new DeviceStateError(`vrings is not a list of at most ${queuePairs * 2} rings`);
  const seen = new Set<number>();
  const vrings = o.vrings.map((entry: unknown, i: number) => {
    const v = object(entry, `vrings[${i}]`, ['index', 'nextAvail']);
    const index = integer(v.index, `vrings[${i}].index`, 0, queuePairs * 2 - 1);
    if (seen.has(index)) throw new DeviceStateError(`vrings: queue ${index} twice`);
    seen.add(index);
    return { index, nextAvail: integer(v.nextAvail, `vrings[${i}].nextAvail`, 0, 0xffff) };
  });

  if (!Array.isArray(o.counters) || o.counters.length !== queuePairs) throw new DeviceStateError(`counters is not a list of ${queuePairs} queue pairs`);
  const counters = o.counters.map((entry: unknown, i: number) => {
    const c = object(entry, `counters[${i}]`, COUNTER_NAMES);
    return Object.fromEntries(COUNTER_NAMES.map((name) => [name, u64(c[name], `counters[${i}].${name}`)])) as unknown as QueuePairCounters;
  });
  return { version: DEVICE_STATE_VERSION, mac, mtu, queuePairs, features, vrings, counters };
}

/** `value` as an object with exactly `keys`. */
function object(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DeviceStateError(`${what} is not an object`);
  const actual = Object.keys(value);
  const missing = keys.filter((k) => !actual.includes(k));
  const extra = actual.filter((k) => !keys.includes(k));
  if (missing.length || extra.length) {
    throw new DeviceStateError(`${what}: ${[missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `unknown ${extra.join(', ')}` : ''].filter(Boolean).join('; ')}`);
  }
  return value as Record<string, unknown>;
}

function integer(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new DeviceStateError(`${what} is not an integer in ${min}..${max}`);
  return value;
}

/** A counter: a decimal string of a u64 (JSON numbers lose precision past 2^53). */
function u64(value: unknown, what: string): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(value) || BigInt(value) > U64_MAX) throw new DeviceStateError(`${what} is not a decimal u64 string`);
  return BigInt(value);
}

/** Counters of `a` plus `b`, per queue pair (totals carried across migrations). */
export function addCounters(a: QueuePairCounters[], b: QueuePairCounters[]): QueuePairCounters[] {
  return a.map((pair, i) => Object.fromEntries(COUNTER_NAMES.map((name) => [name, (pair[name] + (b[i]?.[name] ?? 0n)) & U64_MAX])) as unknown as QueuePairCounters);
}
