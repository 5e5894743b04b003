// Payload structs of the front-end messages (spec "Message Specification" / "Payload"), each
// with its wire size, a decoder and an encoder. All 64-bit fields are bigint. Decoders check
// only syntax (sizes, counts, reserved bits); what the values mean is the session's business.
// Addresses, sizes and offsets here are written by the front-end: untrusted until the session
// checks them against the memory table.

import { ProtocolError } from './errors.ts';
import { PayloadReader, PayloadWriter } from './wire.ts';

/** A single 64-bit integer. */
export const U64_SIZE = 8;

// --- vring state description: { index u32, num u32 } ---------------------------------------

/** Vring state description (SET_VRING_NUM/BASE/ENABLE/ENDIAN, GET_VRING_BASE, VRING_KICK). */
export interface VringState {
  index: number;
  num: number;
}
export const VRING_STATE_SIZE = 8;

export function decodeVringState(r: PayloadReader): VringState {
  return { index: r.u32(), num: r.u32() };
}

export function encodeVringState(w: PayloadWriter, s: VringState): void {
  w.u32(s.index).u32(s.num);
}

// --- vring descriptor index / indices (the `num` of SET_VRING_BASE / GET_VRING_BASE) -------

/** Split virtqueue: bits 0–15 of `num` are the next avail index the back-end will process. */
export const SPLIT_VRING_BASE_MASK = 0xffff;

/** Packed virtqueue: the two free-running indices and wrap counters packed into `num`. */
export interface PackedVringBase {
  /** Bits 0–14: next avail descriptor index. */
  availIdx: number;
  /** Bit 15: driver (available) ring wrap counter. */
  availWrapCounter: boolean;
  /** Bits 16–30: next used descriptor index. */
  usedIdx: number;
  /** Bit 31: device (used) ring wrap counter. */
  usedWrapCounter: boolean;
}

export function decodePackedVringBase(num: number): PackedVringBase {
  return {
    availIdx: num & 0x7fff,
    availWrapCounter: (num & 0x8000) !== 0,
    usedIdx: (num >>> 16) & 0x7fff,
    usedWrapCounter: (num & 0x8000_0000) !== 0,
  };
}

export function encodePackedVringBase(b: PackedVringBase): number {
  if (!Number.isInteger(b.availIdx) || !Number.isInteger(b.usedIdx) || b.availIdx < 0 || b.availIdx > 0x7fff || b.usedIdx < 0 || b.usedIdx > 0x7fff) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `packed vring indices ${b.availIdx}/${b.usedIdx} do not fit in 15 bits`);
  }
  return ((b.usedWrapCounter ? 0x8000_0000 : 0) | (b.usedIdx << 16) | (b.availWrapCounter ? 0x8000 : 0) | b.availIdx) >>> 0;
}

// --- vring address description -------------------------------------------------------------

/** Bit number in VringAddr.flags: log writes to the used ring at logGuestAddr. */
export const VHOST_VRING_F_LOG = 0;

/** Vring address description (struct vhost_vring_addr). Addresses are front-end user addresses (IOVAs with IOMMU_PLATFORM). */
export interface VringAddr {
  index: number;
  flags: number;
  descUserAddr: bigint;
  usedUserAddr: bigint;
  availUserAddr: bigint;
  logGuestAddr: bigint;
}
export const VRING_ADDR_SIZE = 40;

export function decodeVringAddr(r: PayloadReader): VringAddr {
  return {
    index: r.u32(),
    flags: r.u32(),
    descUserAddr: r.u64(),
    usedUserAddr: r.u64(),
    availUserAddr: r.u64(),
    logGuestAddr: r.u64(),
  };
}

export function encodeVringAddr(w: PayloadWriter, a: VringAddr): void {
  w.u32(a.index).u32(a.flags).u64(a.descUserAddr).u64(a.usedUserAddr).u64(a.availUserAddr).u64(a.logGuestAddr);
}

// --- vring file: the u64 of SET_VRING_KICK / CALL / ERR -------------------------------------

/** Bits 0–7 of the u64: vring index. */
export const VHOST_USER_VRING_INDEX_MASK = 0xffn;
/** Bit 8 of the u64: no fd in the ancillary data (poll instead). */
export const VHOST_USER_VRING_NOFD_MASK = 0x100n;

/** The u64 of SET_VRING_KICK/CALL/ERR (named after the kernel's struct vhost_vring_file). */
export interface VringFile {
  index: number;
  /** VHOST_USER_VRING_NOFD_MASK was set: the message carries no fd. */
  noFd: boolean;
}

export function decodeVringFile(r: PayloadReader, request: string): VringFile {
  const value = r.u64();
  if ((value & ~(VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD_MASK)) !== 0n) {
    throw new ProtocolError('VU_ERR_BAD_PAYLOAD', `reserved bits set in vring file u64 0x${value.toString(16)}`, request);
  }
  return { index: Number(value & VHOST_USER_VRING_INDEX_MASK), noFd: (value & VHOST_USER_VRING_NOFD_MASK) !== 0n };
}

export function encodeVringFile(w: PayloadWriter, f: VringFile): void {
  if (!Number.isInteger(f.index) || f.index < 0 || f.index > 0xff) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `vring index ${f.index} does not fit in 8 bits`);
  }
  w.u64(BigInt(f.index) | (f.noFd ? VHOST_USER_VRING_NOFD_MASK : 0n));
}

// --- memory regions ------------------------------------------------------------------------

/** Memory region description (without the XEN_MMAP extension, which this codec does not speak). */
export interface MemoryRegion {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  /** Offset of the region's start in the fd that maps it. */
  mmapOffset: bigint;
}
export const MEMORY_REGION_SIZE = 32;

export function decodeMemoryRegion(r: PayloadReader): MemoryRegion {
  return { guestPhysAddr: r.u64(), memorySize: r.u64(), userspaceAddr: r.u64(), mmapOffset: r.u64() };
}

export function encodeMemoryRegion(w: PayloadWriter, m: MemoryRegion): void {
  w.u64(m.guestPhysAddr).u64(m.memorySize).u64(m.userspaceAddr).u64(m.mmapOffset);
}

/** At most this many regions in one SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS). */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;
/** num regions (u32) + padding (u32). */
export const MEM_TABLE_HEADER_SIZE = 8;

/**
 * Multiple memory regions description (SET_MEM_TABLE). Front-ends send only `numRegions`
 * regions: the payload is exactly 8 + 32 * numRegions bytes. A table with 0 regions is the same
 * 8 bytes as QEMU's postcopy acknowledgement (a u64 0 sent as SET_MEM_TABLE).
 */
export interface MemTable {
  numRegions: number;
  padding: number;
  regions: MemoryRegion[];
}

export function memTableSize(numRegions: number): number {
  return MEM_TABLE_HEADER_SIZE + numRegions * MEMORY_REGION_SIZE;
}

export function decodeMemTable(r: PayloadReader, request: string): MemTable {
  const numRegions = r.u32();
  const padding = r.u32();
  if (numRegions > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new ProtocolError('VU_ERR_BAD_PAYLOAD', `${numRegions} memory regions, at most ${VHOST_MEMORY_BASELINE_NREGIONS}`, request);
  }
  if (r.remaining !== numRegions * MEMORY_REGION_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `${numRegions} memory regions need ${memTableSize(numRegions)} payload bytes, got ${MEM_TABLE_HEADER_SIZE + r.remaining}`, request);
  }
  const regions: MemoryRegion[] = [];
  for (let i = 0; i < numRegions; i++) regions.push(decodeMemoryRegion(r));
  return { numRegions, padding, regions };
}

export function encodeMemTable(w: PayloadWriter, t: MemTable): void {
  if (t.numRegions !== t.regions.length || t.numRegions > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `numRegions ${t.numRegions} with ${t.regions.length} regions (at most ${VHOST_MEMORY_BASELINE_NREGIONS})`);
  }
  w.u32(t.numRegions).u32(t.padding);
  for (const region of t.regions) encodeMemoryRegion(w, region);
}

/** Single memory region description (ADD_MEM_REG / REM_MEM_REG): 64-bit padding + region. */
export interface SingleMemReg {
  padding: bigint;
  region: MemoryRegion;
}
export const SINGLE_MEM_REG_SIZE = 8 + MEMORY_REGION_SIZE;

export function decodeSingleMemReg(r: PayloadReader): SingleMemReg {
  return { padding: r.u64(), region: decodeMemoryRegion(r) };
}

export function encodeSingleMemReg(w: PayloadWriter, m: SingleMemReg): void {
  w.u64(m.padding);
  encodeMemoryRegion(w, m.region);
}

// --- log description -----------------------------------------------------------------------

/** Log description (SET_LOG_BASE): the dirty log lives at mmapOffset..+mmapSize of the fd. */
export interface Log {
  mmapSize: bigint;
  mmapOffset: bigint;
}
export const LOG_SIZE = 16;

export function decodeLog(r: PayloadReader): Log {
  return { mmapSize: r.u64(), mmapOffset: r.u64() };
}

export function encodeLog(w: PayloadWriter, l: Log): void {
  w.u64(l.mmapSize).u64(l.mmapOffset);
}

// --- IOTLB message -------------------------------------------------------------------------

export enum IotlbType {
  VHOST_IOTLB_MISS = 1,
  VHOST_IOTLB_UPDATE = 2,
  VHOST_IOTLB_INVALIDATE = 3,
  VHOST_IOTLB_ACCESS_FAIL = 4,
}

/** struct vhost_iotlb_msg: iova, size, uaddr (u64), perm, type (u8), 6 bytes padding to 32. */
export interface IotlbMsg {
  iova: bigint;
  size: bigint;
  userAddr: bigint;
  /** 0 none, 1 read, 2 write, 3 read/write. */
  perm: number;
  type: number;
}
export const IOTLB_MSG_SIZE = 32;

export function decodeIotlbMsg(r: PayloadReader): IotlbMsg {
  const msg = { iova: r.u64(), size: r.u64(), userAddr: r.u64(), perm: r.u8(), type: r.u8() };
  r.skip(6);
  return msg;
}

export function encodeIotlbMsg(w: PayloadWriter, m: IotlbMsg): void {
  w.u64(m.iova).u64(m.size).u64(m.userAddr).u8(m.perm).u8(m.type).zeros(6);
}

// --- virtio device config space ------------------------------------------------------------

/** offset (u32) + size (u32) + flags (u32). */
export const VHOST_USER_CONFIG_HDR_SIZE = 12;
/** Largest config space access (VHOST_USER_MAX_CONFIG_SIZE). */
export const VHOST_USER_MAX_CONFIG_SIZE = 256;
/** ConfigSpace.flags values. */
export const VHOST_SET_CONFIG_TYPE_FRONTEND = 0;
export const VHOST_SET_CONFIG_TYPE_MIGRATION = 1;

/**
 * Virtio device config space (GET_CONFIG / SET_CONFIG).
 * `payload` is every byte after the 12-byte config header as sent: at least `size` bytes and at
 * most 256. QEMU sends exactly `size` bytes; a front-end that sends the whole VhostUserConfig
 * struct pads to 256. A GET_CONFIG reply must have the request's payload length.
 */
export interface ConfigSpace {
  offset: number;
  size: number;
  flags: number;
  payload: Uint8Array;
}

export function decodeConfigSpace(r: PayloadReader, request: string): ConfigSpace {
  const offset = r.u32();
  const size = r.u32();
  const flags = r.u32();
  if (size > VHOST_USER_MAX_CONFIG_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_PAYLOAD', `config size ${size} > ${VHOST_USER_MAX_CONFIG_SIZE}`, request);
  }
  if (r.remaining < size) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `config size ${size} but only ${r.remaining} payload bytes follow the config header`, request);
  }
  return { offset, size, flags, payload: r.bytesCopy(r.remaining) };
}

export function encodeConfigSpace(w: PayloadWriter, c: ConfigSpace): void {
  if (c.size > VHOST_USER_MAX_CONFIG_SIZE || c.payload.length < c.size || c.payload.length > VHOST_USER_MAX_CONFIG_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `config size ${c.size} with ${c.payload.length} payload bytes (at most ${VHOST_USER_MAX_CONFIG_SIZE})`);
  }
  w.u32(c.offset).u32(c.size).u32(c.flags).raw(c.payload);
}

// --- inflight description ------------------------------------------------------------------

/** Inflight description (GET/SET_INFLIGHT_FD): 2 × u64, 2 × u16, 4 bytes padding (C layout). */
export interface Inflight {
  mmapSize: bigint;
  mmapOffset: bigint;
  numQueues: number;
  queueSize: number;
}
export const INFLIGHT_SIZE = 24;

export function decodeInflight(r: PayloadReader): Inflight {
  const inflight = { mmapSize: r.u64(), mmapOffset: r.u64(), numQueues: r.u16(), queueSize: r.u16() };
  r.skip(4);
  return inflight;
}

export function encodeInflight(w: PayloadWriter, i: Inflight): void {
  w.u64(i.mmapSize).u64(i.mmapOffset).u16(i.numQueues).u16(i.queueSize).zeros(4);
}

// --- VhostUserShared: a 16-byte UUID -------------------------------------------------------

export interface SharedObject {
  /** 16 bytes; first three components big endian (as the spec says), kept as raw bytes. */
  uuid: Uint8Array;
}
export const SHARED_OBJECT_SIZE = 16;

export function decodeSharedObject(r: PayloadReader): SharedObject {
  return { uuid: r.bytesCopy(SHARED_OBJECT_SIZE) };
}

export function encodeSharedObject(w: PayloadWriter, s: SharedObject): void {
  if (s.uuid.length !== SHARED_OBJECT_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `uuid of ${s.uuid.length} bytes, expected ${SHARED_OBJECT_SIZE}`);
  }
  w.raw(s.uuid);
}

// --- device state transfer parameters ------------------------------------------------------

export enum DeviceStateDirection {
  /** Back-end → front-end (migration source). */
  SAVE = 0,
  /** Front-end → back-end (migration destination). */
  LOAD = 1,
}

export enum DeviceStatePhase {
  /** VM stopped, device suspended. */
  STOPPED = 0,
}

/** Device state transfer parameters (SET_DEVICE_STATE_FD). Values outside the enums are for the session to reject. */
export interface DeviceStateTransfer {
  direction: number;
  phase: number;
}
export const DEVICE_STATE_TRANSFER_SIZE = 8;

export function decodeDeviceStateTransfer(r: PayloadReader): DeviceStateTransfer {
  return { direction: r.u32(), phase: r.u32() };
}

export function encodeDeviceStateTransfer(w: PayloadWriter, d: DeviceStateTransfer): void {
  w.u32(d.direction).u32(d.phase);
}

// --- SEND_RARP: the guest MAC in the first 6 bytes of a u64 --------------------------------

export const MAC_SIZE = 6;

export function decodeRarpMac(r: PayloadReader): Uint8Array {
  const mac = r.bytesCopy(MAC_SIZE);
  r.skip(U64_SIZE - MAC_SIZE);
  return mac;
}

export function encodeRarpMac(w: PayloadWriter, mac: Uint8Array): void {
  if (mac.length !== MAC_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `MAC of ${mac.length} bytes, expected ${MAC_SIZE}`);
  }
  w.raw(mac).zeros(U64_SIZE - MAC_SIZE);
}

// --- crypto session description ------------------------------------------------------------

/**
 * The spec does not define the crypto session layout (it is QEMU's VhostUserCryptoSession and
 * changed between QEMU versions). The codec passes it through as bytes, bounded by this size,
 * which is ours: a net back-end never offers CRYPTO_SESSION.
 */
export const CRYPTO_SESSION_MAX_SIZE = 4096;
