/**
 * One handler per front-end request, in one table. The codec has already checked sizes and fd
 * counts (syntax); handlers check meaning: queue indices, negotiated features, values the spec or
 * this device allows. A handler returns the reply payload for requests that reply with data, or
 * undefined (the session then sends a REPLY_ACK when one was asked for).
 */
import { FrontendRequest as R } from '../protocol/requests.ts';
import type { RequestOf } from '../protocol/request-types.ts';
import type { ReplyPayloads } from '../protocol/reply-types.ts';
import { VhostUserProtocolFeature as P } from '../protocol/protocol-features.ts';
import { VirtioFeature as F } from '../protocol/virtio-features.ts';
import { describeFeatures } from '../protocol/feature-bits.ts';
import { MAX_MEM_SLOTS, MAX_MTU, MAX_QUEUE_SIZE, MIN_MTU } from '../device/limits.ts';
import { SessionError } from './errors.ts';
import { addCounters, decodeDeviceState, DEVICE_STATE_VERSION, encodeDeviceState, MAX_DEVICE_STATE_BYTES, type DeviceState } from '../migration/device-state.ts';
import { DeviceStateDirection, DeviceStatePhase } from '../protocol/payloads.ts';
import { formatMac } from '../device/mac.ts';
import type { FdBag } from './fd-bag.ts';
import type { DeviceStateTransferView, Session } from './session.ts';

/** VIRTIO_CONFIG_S_* bits the driver may set (virtio 1.2 §2.1). */
const DEVICE_STATUS_MASK = 0xff;
/** The largest config window a GET_CONFIG may ask for (VHOST_USER_MAX_CONFIG_SIZE). */
const MAX_CONFIG_SIZE = 256;

/** A reply with data. */
export type ReplyResult = { request: R; payload: ReplyPayloads[keyof ReplyPayloads] };
/** A reply, nothing (REPLY_ACK if asked), or a reply that comes once work off the event loop ended. */
export type HandlerResult = ReplyResult | { later: Promise<ReplyResult> } | undefined;
type Handler<K extends R> = (s: Session, req: RequestOf<K>, fds: FdBag) => HandlerResult;
type HandlerTable = { [K in R]?: Handler<K> };

function reply<K extends keyof ReplyPayloads>(request: K, payload: ReplyPayloads[K]): ReplyResult {
  return { request, payload };
}

function requireProtocolFeature(s: Session, feature: P, request: string): void {
  if (!s.hasProtocolFeature(feature)) throw new SessionError('VU_ERR_NOT_NEGOTIATED', request, `needs protocol feature ${P[feature]}`);
}

function checkQueueIndex(s: Session, index: number, request: string): void {
  if (index >= s.vrings.length) {
    throw new SessionError('VU_ERR_BAD_QUEUE_INDEX', request, `queue ${index} does not exist (the device has ${s.vrings.length})`, index);
  }
}

function onGetFeatures(s: Session): HandlerResult {
  return reply(R.GET_FEATURES, s.device.offeredFeatures);
}

function onSetFeatures(s: Session, req: RequestOf<R.SET_FEATURES>): HandlerResult {
  const unknown = req.features & ~s.device.offeredFeatures;
  if (unknown !== 0n) throw new SessionError('VU_ERR_NOT_NEGOTIATED', 'SET_FEATURES', `acks features never offered: 0x${unknown.toString(16)}`);
  s.dataPlane.setFeatures(req.features);
  s.ackedFeatures = req.features;
  s.logNegotiated(req.features);
  return undefined;
}

function onGetProtocolFeatures(s: Session): HandlerResult {
  return reply(R.GET_PROTOCOL_FEATURES, s.device.offeredProtocolFeatures);
}

function onSetProtocolFeatures(s: Session, req: RequestOf<R.SET_PROTOCOL_FEATURES>): HandlerResult {
  const unknown = req.features & ~s.device.offeredProtocolFeatures;
  if (unknown !== 0n) throw new SessionError('VU_ERR_NOT_NEGOTIATED', 'SET_PROTOCOL_FEATURES', `acks protocol features never offered: 0x${unknown.toString(16)}`);
  s.ackedProtocolFeatures = req.features;
  s.log.info('protocol features negotiated', { protocolFeatures: describeFeatures(req.features, P).join(',') });
  return undefined;
}

function onSetOwner(s: Session): HandlerResult {
  s.ownerSet = true;
  return undefined;
}

/** Deprecated in the spec; treated like a disconnect: rings stop, memory and fds are released. */
function onResetOwner(s: Session): HandlerResult {
  s.dataPlane.reset();
  s.ownerSet = false;
  s.hasMemory = false;
  for (const vring of s.vrings) Object.assign(vring, { started: false, enabled: false });
  return undefined;
}

function onSetMemTable(s: Session, req: RequestOf<R.SET_MEM_TABLE>, fds: FdBag): HandlerResult {
  s.dataPlane.setMemTable(req.memTable.regions, fds.takeAll());
  s.hasMemory = true;
  s.log.info('memory table set', { regions: req.memTable.regions.length });
  return undefined;
}

function onGetMaxMemSlots(s: Session): HandlerResult {
  requireProtocolFeature(s, P.CONFIGURE_MEM_SLOTS, 'GET_MAX_MEM_SLOTS');
  return reply(R.GET_MAX_MEM_SLOTS, BigInt(MAX_MEM_SLOTS));
}

function onAddMemReg(s: Session, req: RequestOf<R.ADD_MEM_REG>, fds: FdBag): HandlerResult {
  requireProtocolFeature(s, P.CONFIGURE_MEM_SLOTS, 'ADD_MEM_REG');
  s.dataPlane.addMemRegion(req.memReg.region, fds.take());
  s.hasMemory = true;
  return undefined;
}

function onRemMemReg(s: Session, req: RequestOf<R.REM_MEM_REG>): HandlerResult {
  requireProtocolFeature(s, P.CONFIGURE_MEM_SLOTS, 'REM_MEM_REG');
  s.dataPlane.removeMemRegion(req.memReg.region);
  return undefined;
}

/**
 * Maps the dirty-page log. Only the shared-memory form is supported (LOG_SHMFD: the log comes as
 * an fd); the reply's u64 is 0 ("done": the front-end waits for it before it relies on the log).
 */
function onSetLogBase(s: Session, req: RequestOf<R.SET_LOG_BASE>, fds: FdBag): HandlerResult {
  requireProtocolFeature(s, P.LOG_SHMFD, 'SET_LOG_BASE');
  if (fds.count !== 1) throw new SessionError('VU_ERR_UNSUPPORTED', 'SET_LOG_BASE', `needs the log as one fd, got ${fds.count}`);
  const { mmapSize, mmapOffset } = req.log;
  try {
    s.dataPlane.setLogBase(mmapSize, mmapOffset, fds.take());
  } catch (error) {
    // The front-end waits for the reply and cannot be told "failed": migrating without a log
    // would silently corrupt the guest, so the connection ends instead.
    s.close('SET_LOG_BASE failed and its reply cannot say so');
    throw error;
  }
  s.log.info('dirty log mapped', { mmapSize: Number(mmapSize), mmapOffset: Number(mmapOffset) });
  return reply(R.SET_LOG_BASE, 0n);
}

/** The eventfd the front-end wants signalled after log updates: this back-end never needs to
 * (its log writes are visible at once in shared memory), so the fd is closed. */
function onSetLogFd(): HandlerResult {
  return undefined;
}

/** Announces the guest at its new place after migration: a RARP broadcast from its MAC. */
function onSendRarp(s: Session, req: RequestOf<R.SEND_RARP>): HandlerResult {
  requireProtocolFeature(s, P.RARP, 'SEND_RARP');
  s.dataPlane.sendRarp(req.mac);
  s.log.info('RARP announcement sent', { mac: [...req.mac].map((b) => b.toString(16).padStart(2, '0')).join(':') });
  return undefined;
}

/** SET_DEVICE_STATE_FD reply: bits 0–7 zero on success; bit 8 "no fd returned" (we use the front-end's channel). */
const DEVICE_STATE_FD_OK_NO_FD = 1n << 8n;
const DEVICE_STATE_FD_FAILED = DEVICE_STATE_FD_OK_NO_FD | 1n;
/** CHECK_DEVICE_STATE reply: 0 = the last transfer succeeded. */
const DEVICE_STATE_FAILED = 1n;

/**
 * Opens a back-end state transfer (spec "Migrating back-end state") over the front-end's channel:
 * SAVE writes this port's state into it and closes it; LOAD reads it to end of file, then checks
 * and applies it. Both run after the reply (the front-end reads or writes only then); the outcome
 * is for CHECK_DEVICE_STATE. A refused request replies failure and changes nothing.
 */
function onSetDeviceStateFd(s: Session, req: RequestOf<R.SET_DEVICE_STATE_FD>, fds: FdBag): HandlerResult {
  requireProtocolFeature(s, P.DEVICE_STATE, 'SET_DEVICE_STATE_FD');
  const { direction, phase } = req.transfer;
  const refuse = (why: string) => {
    s.log.warn('device state transfer refused', { reason: why });
    return reply(R.SET_DEVICE_STATE_FD, DEVICE_STATE_FD_FAILED);
  };
  if (phase !== DeviceStatePhase.STOPPED) return refuse(`phase ${phase} (only STOPPED = 0 exists)`);
  if (direction !== DeviceStateDirection.SAVE && direction !== DeviceStateDirection.LOAD) return refuse(`direction ${direction}`);
  if (s.deviceStateTransfer && !s.deviceStateTransfer.done) return refuse('a transfer is still running');
  const fd = fds.take();
  const transfer: DeviceStateTransferView = { direction: direction === DeviceStateDirection.SAVE ? 'save' : 'load', done: false, settled: Promise.resolve() };
  const work = direction === DeviceStateDirection.SAVE ? s.stateChannel.writeAndClose(fd, encodeDeviceState(captureDeviceState(s))) : loadDeviceState(s, fd);
  transfer.settled = work.then(
    () => {
      transfer.done = true;
      s.log.info(`device state ${transfer.direction === 'save' ? 'saved' : 'loaded'}`);
    },
    (error: Error) => {
      Object.assign(transfer, { done: true, error });
      s.log.warn(`device state ${transfer.direction} failed`, { code: (error as { code?: string }).code, error: error.message });
    },
  );
  s.deviceStateTransfer = transfer;
  return reply(R.SET_DEVICE_STATE_FD, DEVICE_STATE_FD_OK_NO_FD);
}

/** Whether the last transfer succeeded; waits for it when it is still running (spec: the back-end answers once it knows). */
function onCheckDeviceState(s: Session): HandlerResult {
  requireProtocolFeature(s, P.DEVICE_STATE, 'CHECK_DEVICE_STATE');
  const transfer = s.deviceStateTransfer;
  if (!transfer) return reply(R.CHECK_DEVICE_STATE, DEVICE_STATE_FAILED);
  const result = () => reply(R.CHECK_DEVICE_STATE, transfer.error ? DEVICE_STATE_FAILED : 0n);
  return transfer.done ? result() : { later: transfer.settled.then(result) };
}

/** This port's state now: rings stopped by GET_VRING_BASE, counters including those carried here. */
function captureDeviceState(s: Session): DeviceState {
  const live = s.dataPlane.counters();
  const counters = Array.from({ length: s.device.queuePairs }, (_, i) => live[i] ?? zeroCounters());
  return {
    version: DEVICE_STATE_VERSION,
    mac: s.device.mac,
    mtu: s.device.mtu,
    queuePairs: s.device.queuePairs,
    features: s.ackedFeatures ?? 0n,
    vrings: s.vrings.flatMap((v, index) => (!v.started && v.nextAvail !== undefined ? [{ index, nextAvail: v.nextAvail }] : [])),
    counters: s.carriedCounters ? addCounters(counters, s.carriedCounters) : counters,
    stations: s.dataPlane.stations(),
  };
}

function zeroCounters() {
  return { rxFrames: 0n, rxBytes: 0n, rxDroppedNoBuffer: 0n, rxTruncated: 0n, txFrames: 0n, txBytes: 0n, txDropped: 0n, txErrors: 0n };
}

/** Reads a state, checks it against this device, then applies it — all checks before any change. */
async function loadDeviceState(s: Session, fd: number): Promise<void> {
  const state = decodeDeviceState(await s.stateChannel.readAndClose(fd, MAX_DEVICE_STATE_BYTES));
  if (state.queuePairs !== s.device.queuePairs) throw new SessionError('VU_ERR_BAD_VALUE', 'SET_DEVICE_STATE_FD', `the state has ${state.queuePairs} queue pairs, this device ${s.device.queuePairs}`);
  const unknown = state.features & ~s.device.offeredFeatures;
  if (unknown !== 0n) throw new SessionError('VU_ERR_NOT_NEGOTIATED', 'SET_DEVICE_STATE_FD', `the source's driver uses features this back-end does not offer: 0x${unknown.toString(16)}`);
  for (const { index, nextAvail } of state.vrings) {
    const here = s.vrings[index].nextAvail;
    if (here !== undefined && here !== nextAvail) {
      throw new SessionError('VU_ERR_BAD_VALUE', 'SET_DEVICE_STATE_FD', `ring base ${nextAvail} differs from SET_VRING_BASE ${here}`, index);
    }
  }
  s.device.mac = state.mac;
  s.device.mtu = state.mtu;
  s.carriedCounters = state.counters;
  s.dataPlane.adoptStations(state.stations);
  s.log.info('device state applied', { mac: formatMac(state.mac), mtu: state.mtu, rings: state.vrings.length, stations: state.stations.map(formatMac).join(',') });
}

function onSetVringNum(s: Session, req: RequestOf<R.SET_VRING_NUM>): HandlerResult {
  const { index, num } = req.state;
  checkQueueIndex(s, index, 'SET_VRING_NUM');
  if (s.hasFeature(F.VIRTIO_F_RING_PACKED)) {
    if (num === 0 || num > MAX_QUEUE_SIZE) throw new SessionError('VU_ERR_BAD_VALUE', 'SET_VRING_NUM', `queue size ${num} is not in 1..${MAX_QUEUE_SIZE} (virtio 1.2 §2.8)`, index);
  } else if (num === 0 || num > MAX_QUEUE_SIZE || (num & (num - 1)) !== 0) {
    throw new SessionError('VU_ERR_BAD_VALUE', 'SET_VRING_NUM', `queue size ${num} is not a power of two in 1..${MAX_QUEUE_SIZE} (virtio 1.2 §2.7)`, index);
  }
  s.dataPlane.setVringNum(index, num);
  s.vrings[index].num = num;
  return undefined;
}

function onSetVringAddr(s: Session, req: RequestOf<R.SET_VRING_ADDR>): HandlerResult {
  checkQueueIndex(s, req.addr.index, 'SET_VRING_ADDR');
  if (!s.hasMemory) throw new SessionError('VU_ERR_BAD_STATE', 'SET_VRING_ADDR', 'no memory table yet', req.addr.index);
  s.dataPlane.setVringAddr(req.addr.index, req.addr);
  return undefined;
}

/**
 * Split ring: `num` is the next avail index (16 bits). Packed ring (spec "Vring descriptor indices
 * for packed virtqueues"): bits 0–14 the avail position, bit 15 its wrap counter; bits 16–31 (the
 * used ones) are not needed, the used position follows the avail one (see NetDevice::set_vring_base).
 */
function onSetVringBase(s: Session, req: RequestOf<R.SET_VRING_BASE>): HandlerResult {
  const { index, num } = req.state;
  checkQueueIndex(s, index, 'SET_VRING_BASE');
  const nextAvail = num & 0xffff;
  if (s.hasFeature(F.VIRTIO_F_RING_PACKED)) {
    const size = s.vrings[index].num;
    if (size > 0 && (nextAvail & 0x7fff) >= size) throw new SessionError('VU_ERR_BAD_VALUE', 'SET_VRING_BASE', `packed-ring avail position ${nextAvail & 0x7fff} is not below the queue size ${size}`, index);
  } else if (num > 0xffff) {
    throw new SessionError('VU_ERR_BAD_VALUE', 'SET_VRING_BASE', `split-ring base ${num} exceeds 16 bits`, index);
  }
  s.dataPlane.setVringBase(index, num);
  s.vrings[index].nextAvail = nextAvail;
  s.log.debug('ring base set', { queue: index, nextAvail });
  return undefined;
}

/** Stops the ring (spec: "Ring states") and returns where it goes on (a packed ring: with the used position in bits 16–31). */
function onGetVringBase(s: Session, req: RequestOf<R.GET_VRING_BASE>): HandlerResult {
  const { index } = req.state;
  checkQueueIndex(s, index, 'GET_VRING_BASE');
  const base = s.dataPlane.getVringBase(index);
  const nextAvail = base & 0xffff;
  Object.assign(s.vrings[index], { started: false, nextAvail });
  s.log.debug('ring stopped', { queue: index, nextAvail });
  return reply(R.GET_VRING_BASE, { index, num: base });
}

function onSetVringKick(s: Session, req: RequestOf<R.SET_VRING_KICK>, fds: FdBag): HandlerResult {
  const { index, noFd } = req.file;
  checkQueueIndex(s, index, 'SET_VRING_KICK');
  if (noFd) throw new SessionError('VU_ERR_UNSUPPORTED', 'SET_VRING_KICK', 'polling mode (no kick fd) is not supported', index);
  s.dataPlane.setVringKick(index, fds.take());
  s.vrings[index].started = true;
  // Spec: without VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled as soon as it starts.
  if (!s.hasFeature(F.VHOST_USER_F_PROTOCOL_FEATURES)) setEnabled(s, index, true);
  return undefined;
}

function onSetVringCall(s: Session, req: RequestOf<R.SET_VRING_CALL>, fds: FdBag): HandlerResult {
  const { index, noFd } = req.file;
  checkQueueIndex(s, index, 'SET_VRING_CALL');
  s.dataPlane.setVringCall(index, noFd ? null : fds.take());
  return undefined;
}

function onSetVringErr(s: Session, req: RequestOf<R.SET_VRING_ERR>, fds: FdBag): HandlerResult {
  const { index, noFd } = req.file;
  checkQueueIndex(s, index, 'SET_VRING_ERR');
  s.dataPlane.setVringErr(index, noFd ? null : fds.take());
  return undefined;
}

function setEnabled(s: Session, index: number, enabled: boolean): void {
  s.dataPlane.setVringEnable(index, enabled);
  const wasUp = s.vrings.some((v) => v.enabled);
  s.vrings[index].enabled = enabled;
  const isUp = s.vrings.some((v) => v.enabled);
  if (isUp !== wasUp) s.log.info(isUp ? 'link up: rings enabled' : 'link down: no ring enabled');
}

function onSetVringEnable(s: Session, req: RequestOf<R.SET_VRING_ENABLE>): HandlerResult {
  const { index, num } = req.state;
  checkQueueIndex(s, index, 'SET_VRING_ENABLE');
  if (num > 1) throw new SessionError('VU_ERR_BAD_VALUE', 'SET_VRING_ENABLE', `enable must be 0 or 1, got ${num}`, index);
  setEnabled(s, index, num === 1);
  return undefined;
}

/** For virtio-net the answer is in queue pairs (QEMU compares it with its `queues=`). */
function onGetQueueNum(s: Session): HandlerResult {
  requireProtocolFeature(s, P.MQ, 'GET_QUEUE_NUM');
  return reply(R.GET_QUEUE_NUM, BigInt(s.device.queuePairs));
}

function onNetSetMtu(s: Session, req: RequestOf<R.NET_SET_MTU>): HandlerResult {
  requireProtocolFeature(s, P.MTU, 'NET_SET_MTU');
  if (req.mtu < MIN_MTU || req.mtu > MAX_MTU) throw new SessionError('VU_ERR_BAD_VALUE', 'NET_SET_MTU', `MTU ${req.mtu} is outside ${MIN_MTU}..${MAX_MTU}`);
  s.device.mtu = Number(req.mtu);
  s.log.info('MTU set by the front-end', { mtu: s.device.mtu });
  return undefined;
}

function onSetStatus(s: Session, req: RequestOf<R.SET_STATUS>): HandlerResult {
  requireProtocolFeature(s, P.STATUS, 'SET_STATUS');
  if (req.status > BigInt(DEVICE_STATUS_MASK)) throw new SessionError('VU_ERR_BAD_VALUE', 'SET_STATUS', `status 0x${req.status.toString(16)} has bits past 8`);
  s.status = Number(req.status);
  return undefined;
}

function onGetStatus(s: Session): HandlerResult {
  requireProtocolFeature(s, P.STATUS, 'GET_STATUS');
  return reply(R.GET_STATUS, BigInt(s.status));
}

function onGetConfig(s: Session, req: RequestOf<R.GET_CONFIG>): HandlerResult {
  requireProtocolFeature(s, P.CONFIG, 'GET_CONFIG');
  const { offset, size, flags, payload } = req.config;
  if (offset + size > MAX_CONFIG_SIZE) throw new SessionError('VU_ERR_BAD_VALUE', 'GET_CONFIG', `window ${offset}+${size} is past the ${MAX_CONFIG_SIZE}-byte config space`);
  // The reply has the request's payload length; the window's bytes go first.
  const out = new Uint8Array(payload.length);
  out.set(s.device.readConfig(offset, size));
  return reply(R.GET_CONFIG, { offset, size, flags, payload: out });
}

function onSetConfig(): HandlerResult {
  throw new SessionError('VU_ERR_UNSUPPORTED', 'SET_CONFIG', 'the virtio-net config space is read-only here');
}

export const HANDLERS: HandlerTable = {
  [R.GET_FEATURES]: onGetFeatures,
  [R.SET_FEATURES]: onSetFeatures,
  [R.SET_OWNER]: onSetOwner,
  [R.RESET_OWNER]: onResetOwner,
  [R.SET_MEM_TABLE]: onSetMemTable,
  [R.SET_LOG_BASE]: onSetLogBase,
  [R.SET_LOG_FD]: onSetLogFd,
  [R.SET_VRING_NUM]: onSetVringNum,
  [R.SET_VRING_ADDR]: onSetVringAddr,
  [R.SET_VRING_BASE]: onSetVringBase,
  [R.GET_VRING_BASE]: onGetVringBase,
  [R.SET_VRING_KICK]: onSetVringKick,
  [R.SET_VRING_CALL]: onSetVringCall,
  [R.SET_VRING_ERR]: onSetVringErr,
  [R.GET_PROTOCOL_FEATURES]: onGetProtocolFeatures,
  [R.SET_PROTOCOL_FEATURES]: onSetProtocolFeatures,
  [R.GET_QUEUE_NUM]: onGetQueueNum,
  [R.SET_VRING_ENABLE]: onSetVringEnable,
  [R.SEND_RARP]: onSendRarp,
  [R.NET_SET_MTU]: onNetSetMtu,
  [R.GET_CONFIG]: onGetConfig,
  [R.SET_CONFIG]: onSetConfig,
  [R.GET_MAX_MEM_SLOTS]: onGetMaxMemSlots,
  [R.ADD_MEM_REG]: onAddMemReg,
  [R.REM_MEM_REG]: onRemMemReg,
  [R.SET_STATUS]: onSetStatus,
  [R.GET_STATUS]: onGetStatus,
  [R.SET_DEVICE_STATE_FD]: onSetDeviceStateFd,
  [R.CHECK_DEVICE_STATE]: onCheckDeviceState,
};
