// One or more byte-built fixtures for every front-end request, with the Request each decodes to.
// Values are chosen so that a swapped, truncated or mis-sized field changes the result.

import { FrontendRequest as R, type Request } from '../../src/protocol/index.ts';
import { concat, message, u16le, u32le, u64le, u8, zeros } from './bytes.ts';

export interface Fixture {
  title: string;
  msg: Uint8Array;
  fds: number;
  expected: Request;
}

const V = 0x1; // VHOST_USER_VERSION
const NEED_REPLY = 0x8;

const region = (gpa: bigint, size: bigint, uaddr: bigint, off: bigint): Uint8Array => concat(u64le(gpa), u64le(size), u64le(uaddr), u64le(off));
const regionValue = (gpa: bigint, size: bigint, uaddr: bigint, off: bigint) => ({ guestPhysAddr: gpa, memorySize: size, userspaceAddr: uaddr, mmapOffset: off });

const REGION_A: [bigint, bigint, bigint, bigint] = [0x0n, 0x8000_0000n, 0x7f12_3400_0000n, 0x0n];
const REGION_B: [bigint, bigint, bigint, bigint] = [0x1_0000_0000n, 0x4000_0000n, 0x7f98_0000_0000n, 0x8000_0000n];
const BIG = 0xfedc_ba98_7654_3210n;
const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const UUID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const CONFIG_BYTES = Uint8Array.of(0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x01, 0x00);

const plain = <K extends R>(request: K, flags = V) => ({ request, flags, needReply: (flags & NEED_REPLY) !== 0 });

function noPayload(request: R, fds = 0, title = R[request]): Fixture {
  return { title, msg: message(request, V), fds, expected: plain(request) as Request };
}

function vringState(request: R, index: number, num: number): Fixture {
  return { title: R[request], msg: message(request, V, u32le(index), u32le(num)), fds: 0, expected: { ...plain(request), state: { index, num } } as Request };
}

function vringFile(request: R, index: number, noFd: boolean): Fixture {
  const value = BigInt(index) | (noFd ? 0x100n : 0n);
  return {
    title: `${R[request]}${noFd ? ' NOFD' : ''}`,
    msg: message(request, V, u64le(value)),
    fds: noFd ? 0 : 1,
    expected: { ...plain(request), file: { index, noFd } } as Request,
  };
}

export const FIXTURES: Fixture[] = [
  noPayload(R.GET_FEATURES),
  { title: 'SET_FEATURES', msg: message(R.SET_FEATURES, V, u64le(0x1_4020_8000n)), fds: 0, expected: { ...plain(R.SET_FEATURES), features: 0x1_4020_8000n } },
  noPayload(R.SET_OWNER),
  noPayload(R.RESET_OWNER),
  {
    title: 'SET_MEM_TABLE 2 regions',
    msg: message(R.SET_MEM_TABLE, V | NEED_REPLY, u32le(2), u32le(0), region(...REGION_A), region(...REGION_B)),
    fds: 2,
    expected: { ...plain(R.SET_MEM_TABLE, V | NEED_REPLY), memTable: { numRegions: 2, padding: 0, regions: [regionValue(...REGION_A), regionValue(...REGION_B)] } },
  },
  {
    title: 'SET_MEM_TABLE 0 regions (postcopy ack bytes)',
    msg: message(R.SET_MEM_TABLE, V, u64le(0n)),
    fds: 0,
    expected: { ...plain(R.SET_MEM_TABLE), memTable: { numRegions: 0, padding: 0, regions: [] } },
  },
  {
    title: 'SET_MEM_TABLE 8 regions',
    msg: message(R.SET_MEM_TABLE, V, u32le(8), u32le(0), ...Array.from({ length: 8 }, (_, i) => region(BigInt(i) << 32n, 0x1000n, BigInt(i + 1) << 40n, 0n))),
    fds: 8,
    expected: {
      ...plain(R.SET_MEM_TABLE),
      memTable: { numRegions: 8, padding: 0, regions: Array.from({ length: 8 }, (_, i) => regionValue(BigInt(i) << 32n, 0x1000n, BigInt(i + 1) << 40n, 0n)) },
    },
  },
  { title: 'SET_LOG_BASE with fd', msg: message(R.SET_LOG_BASE, V, u64le(0x4_0000n), u64le(0x1000n)), fds: 1, expected: { ...plain(R.SET_LOG_BASE), log: { mmapSize: 0x4_0000n, mmapOffset: 0x1000n } } },
  noPayload(R.SET_LOG_FD, 1),
  vringState(R.SET_VRING_NUM, 1, 256),
  {
    title: 'SET_VRING_ADDR',
    msg: message(R.SET_VRING_ADDR, V, u32le(3), u32le(1), u64le(0x7f00_0000_1000n), u64le(0x7f00_0000_3000n), u64le(0x7f00_0000_2000n), u64le(0x1_2345_6000n)),
    fds: 0,
    expected: {
      ...plain(R.SET_VRING_ADDR),
      addr: { index: 3, flags: 1, descUserAddr: 0x7f00_0000_1000n, usedUserAddr: 0x7f00_0000_3000n, availUserAddr: 0x7f00_0000_2000n, logGuestAddr: 0x1_2345_6000n },
    },
  },
  vringState(R.SET_VRING_BASE, 0, 0x8001_8002),
  vringState(R.GET_VRING_BASE, 1, 0),
  vringFile(R.SET_VRING_KICK, 0, false),
  vringFile(R.SET_VRING_KICK, 5, true),
  vringFile(R.SET_VRING_CALL, 255, false),
  vringFile(R.SET_VRING_CALL, 1, true),
  vringFile(R.SET_VRING_ERR, 2, false),
  vringFile(R.SET_VRING_ERR, 2, true),
  noPayload(R.GET_PROTOCOL_FEATURES),
  { title: 'SET_PROTOCOL_FEATURES', msg: message(R.SET_PROTOCOL_FEATURES, V, u64le(0x8209n)), fds: 0, expected: { ...plain(R.SET_PROTOCOL_FEATURES), features: 0x8209n } },
  noPayload(R.GET_QUEUE_NUM),
  vringState(R.SET_VRING_ENABLE, 7, 1),
  { title: 'SEND_RARP', msg: message(R.SEND_RARP, V, MAC, zeros(2)), fds: 0, expected: { ...plain(R.SEND_RARP), mac: MAC } },
  { title: 'NET_SET_MTU', msg: message(R.NET_SET_MTU, V | NEED_REPLY, u64le(9000n)), fds: 0, expected: { ...plain(R.NET_SET_MTU, V | NEED_REPLY), mtu: 9000n } },
  noPayload(R.SET_BACKEND_REQ_FD, 1),
  {
    title: 'IOTLB_MSG',
    msg: message(R.IOTLB_MSG, V | NEED_REPLY, u64le(0xfee0_0000n), u64le(0x1000n), u64le(0x7f55_0000_0000n), u8(3), u8(2), zeros(6)),
    fds: 0,
    expected: { ...plain(R.IOTLB_MSG, V | NEED_REPLY), iotlb: { iova: 0xfee0_0000n, size: 0x1000n, userAddr: 0x7f55_0000_0000n, perm: 3, type: 2 } },
  },
  vringState(R.SET_VRING_ENDIAN, 0, 1),
  {
    title: 'GET_CONFIG (QEMU: exactly size bytes)',
    msg: message(R.GET_CONFIG, V, u32le(0), u32le(8), u32le(0), zeros(8)),
    fds: 0,
    expected: { ...plain(R.GET_CONFIG), config: { offset: 0, size: 8, flags: 0, payload: zeros(8) } },
  },
  {
    title: 'GET_CONFIG (whole struct, padded to 256)',
    msg: message(R.GET_CONFIG, V, u32le(0), u32le(6), u32le(0), zeros(256)),
    fds: 0,
    expected: { ...plain(R.GET_CONFIG), config: { offset: 0, size: 6, flags: 0, payload: zeros(256) } },
  },
  {
    title: 'SET_CONFIG',
    msg: message(R.SET_CONFIG, V, u32le(0), u32le(8), u32le(1), CONFIG_BYTES),
    fds: 0,
    expected: { ...plain(R.SET_CONFIG), config: { offset: 0, size: 8, flags: 1, payload: CONFIG_BYTES } },
  },
  {
    title: 'CREATE_CRYPTO_SESSION (opaque)',
    msg: message(R.CREATE_CRYPTO_SESSION, V, u64le(BIG), Uint8Array.of(1, 2, 3)),
    fds: 0,
    expected: { ...plain(R.CREATE_CRYPTO_SESSION), session: concat(u64le(BIG), Uint8Array.of(1, 2, 3)) },
  },
  { title: 'CLOSE_CRYPTO_SESSION', msg: message(R.CLOSE_CRYPTO_SESSION, V, u64le(BIG)), fds: 0, expected: { ...plain(R.CLOSE_CRYPTO_SESSION), sessionId: BIG } },
  noPayload(R.POSTCOPY_ADVISE),
  noPayload(R.POSTCOPY_LISTEN),
  noPayload(R.POSTCOPY_END),
  {
    title: 'GET_INFLIGHT_FD',
    msg: message(R.GET_INFLIGHT_FD, V, u64le(0n), u64le(0n), u16le(2), u16le(256), zeros(4)),
    fds: 0,
    expected: { ...plain(R.GET_INFLIGHT_FD), inflight: { mmapSize: 0n, mmapOffset: 0n, numQueues: 2, queueSize: 256 } },
  },
  {
    title: 'SET_INFLIGHT_FD',
    msg: message(R.SET_INFLIGHT_FD, V, u64le(0x2_1000n), u64le(0x40n), u16le(4), u16le(1024), zeros(4)),
    fds: 1,
    expected: { ...plain(R.SET_INFLIGHT_FD), inflight: { mmapSize: 0x2_1000n, mmapOffset: 0x40n, numQueues: 4, queueSize: 1024 } },
  },
  noPayload(R.GPU_SET_SOCKET, 1),
  noPayload(R.RESET_DEVICE),
  vringState(R.VRING_KICK, 4, 0),
  noPayload(R.GET_MAX_MEM_SLOTS),
  {
    title: 'ADD_MEM_REG',
    msg: message(R.ADD_MEM_REG, V | NEED_REPLY, u64le(0n), region(...REGION_B)),
    fds: 1,
    expected: { ...plain(R.ADD_MEM_REG, V | NEED_REPLY), memReg: { padding: 0n, region: regionValue(...REGION_B) } },
  },
  {
    title: 'REM_MEM_REG',
    msg: message(R.REM_MEM_REG, V, u64le(0n), region(...REGION_A)),
    fds: 0,
    expected: { ...plain(R.REM_MEM_REG), memReg: { padding: 0n, region: regionValue(...REGION_A) } },
  },
  { title: 'SET_STATUS', msg: message(R.SET_STATUS, V, u64le(0xfn)), fds: 0, expected: { ...plain(R.SET_STATUS), status: 0xfn } },
  noPayload(R.GET_STATUS),
  { title: 'GET_SHARED_OBJECT', msg: message(R.GET_SHARED_OBJECT, V, UUID), fds: 0, expected: { ...plain(R.GET_SHARED_OBJECT), shared: { uuid: UUID } } },
  {
    title: 'SET_DEVICE_STATE_FD',
    msg: message(R.SET_DEVICE_STATE_FD, V, u32le(1), u32le(0)),
    fds: 1,
    expected: { ...plain(R.SET_DEVICE_STATE_FD), transfer: { direction: 1, phase: 0 } },
  },
  noPayload(R.CHECK_DEVICE_STATE),
];
