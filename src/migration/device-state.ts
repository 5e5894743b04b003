/**
 * The back-end state of one port that travels with a live migration (VHOST_USER_PROTOCOL_F_DEVICE_STATE,
 * spec "Migrating back-end state"): a plain, versioned value, separate from the live session, in
 * JSON (bigints as strings). The source front-end carries the bytes; they are as untrusted as any
 * message payload: decodeDeviceState() checks version, shape and bounds before anything is applied.
 *
 * Version 2:
 *   { "version": 2, "mac": "02:00:00:00:00:01", "mtu": 1500, "queuePairs": 1,
 *     "features": "0x…",                         // virtio features the driver acked on the source
 *     "vrings": [{ "index": 0, "nextAvail": 17 }, …],   // rings stopped by GET_VRING_BASE
 *     "counters": [{ "rxFrames": "12", … }, …],  // one entry per queue pair, totals so far
 *     "stations": ["52:54:00:12:34:56", …] }     // switch MAC-table entries on this port (≤ 256)
 * Version 1 (no "stations") is still read, as a state with no stations.
 */
import type { QueuePairCounters } from '../device/data-plane.ts';
import { formatMac, parseMac, type MacAddress } from '../device/mac.ts';
import { MAX_CARRIED_STATIONS, MAX_MTU, MAX_QUEUE_PAIRS, MIN_MTU } from '../device/limits.ts';

export const DEVICE_STATE_VERSION = 2;

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
  /** Unicast MACs the source's switch had on this port (most recently seen first); [] on a TAP. */
  stations: MacAddress[];
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
const STATE_KEYS_V1 = ['version', 'mac', 'mtu', 'queuePairs', 'features', 'vrings', 'counters'];
const STATE_KEYS = [...STATE_KEYS_V1, 'stations'];
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
    stations: state.stations.map(formatMac),
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

/** Parses and checks a state; throws DeviceStateError on anything but a well-formed version-1 or -2 state. */
export function decodeDeviceState(bytes: Uint8Array): DeviceState {
  if (bytes.length > MAX_DEVICE_STATE_BYTES) throw new DeviceStateError(`${bytes.length} bytes, more than ${MAX_DEVICE_STATE_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new DeviceStateError(`not JSON (${(error as Error).message})`);
  }
  const version = (value as { version?: unknown } | null)?.version;
  if (version !== 1 && version !== DEVICE_STATE_VERSION) throw new DeviceStateError(`version ${JSON.stringify(version)}, this back-end reads versions 1 and ${DEVICE_STATE_VERSION}`);
  const o = object(value, 'the state', version === 1 ? STATE_KEYS_V1 : STATE_KEYS);
  const mac = macAddress(o.mac, 'mac');
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
  const stations = o.stations ?? [];
  if (!Array.isArray(stations) || stations.length > MAX_CARRIED_STATIONS) throw new DeviceStateError(`stations is not a list of at most ${MAX_CARRIED_STATIONS} MACs`);
  return { version: DEVICE_STATE_VERSION, mac, mtu, queuePairs, features, vrings, counters, stations: stations.map((m: unknown, i: number) => unicastMac(m, `stations[${i}]`)) };
}

function macAddress(value: unknown, what: string): MacAddress {
  if (typeof value !== 'string') throw new DeviceStateError(`${what} is not a string`);
  try {
    return parseMac(value);
  } catch (error) {
    throw new DeviceStateError(`${what}: ${(error as Error).message}`);
  }
}

/** A station: a unicast, non-zero MAC (the only kind a switch learns). */
function unicastMac(value: unknown, what: string): MacAddress {
  const mac = macAddress(value, what);
  if ((mac[0] & 1) !== 0 || mac.every((b) => b === 0)) throw new DeviceStateError(`${what} is not a unicast MAC`);
  return mac;
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
