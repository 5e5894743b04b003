// The decoded form of every front-end request: a discriminated union on `request`.

import { FrontendRequest as R } from './requests.ts';
import type {
  ConfigSpace,
  DeviceStateTransfer,
  Inflight,
  IotlbMsg,
  Log,
  MemTable,
  SharedObject,
  SingleMemReg,
  VringAddr,
  VringFile,
  VringState,
} from './payloads.ts';

/** The payload fields of each request, by request code. */
export interface RequestBodies {
  [R.GET_FEATURES]: {};
  [R.SET_FEATURES]: { features: bigint };
  [R.SET_OWNER]: {};
  [R.RESET_OWNER]: {};
  [R.SET_MEM_TABLE]: { memTable: MemTable };
  [R.SET_LOG_BASE]: { log: Log };
  [R.SET_LOG_FD]: {};
  [R.SET_VRING_NUM]: { state: VringState };
  [R.SET_VRING_ADDR]: { addr: VringAddr };
  [R.SET_VRING_BASE]: { state: VringState };
  [R.GET_VRING_BASE]: { state: VringState };
  [R.SET_VRING_KICK]: { file: VringFile };
  [R.SET_VRING_CALL]: { file: VringFile };
  [R.SET_VRING_ERR]: { file: VringFile };
  [R.GET_PROTOCOL_FEATURES]: {};
  [R.SET_PROTOCOL_FEATURES]: { features: bigint };
  [R.GET_QUEUE_NUM]: {};
  [R.SET_VRING_ENABLE]: { state: VringState };
  [R.SEND_RARP]: { mac: Uint8Array };
  [R.NET_SET_MTU]: { mtu: bigint };
  [R.SET_BACKEND_REQ_FD]: {};
  [R.IOTLB_MSG]: { iotlb: IotlbMsg };
  [R.SET_VRING_ENDIAN]: { state: VringState };
  [R.GET_CONFIG]: { config: ConfigSpace };
  [R.SET_CONFIG]: { config: ConfigSpace };
  [R.CREATE_CRYPTO_SESSION]: { session: Uint8Array };
  [R.CLOSE_CRYPTO_SESSION]: { sessionId: bigint };
  [R.POSTCOPY_ADVISE]: {};
  [R.POSTCOPY_LISTEN]: {};
  [R.POSTCOPY_END]: {};
  [R.GET_INFLIGHT_FD]: { inflight: Inflight };
  [R.SET_INFLIGHT_FD]: { inflight: Inflight };
  [R.GPU_SET_SOCKET]: {};
  [R.RESET_DEVICE]: {};
  [R.VRING_KICK]: { state: VringState };
  [R.GET_MAX_MEM_SLOTS]: {};
  [R.ADD_MEM_REG]: { memReg: SingleMemReg };
  [R.REM_MEM_REG]: { memReg: SingleMemReg };
  [R.SET_STATUS]: { status: bigint };
  [R.GET_STATUS]: {};
  [R.GET_SHARED_OBJECT]: { shared: SharedObject };
  [R.SET_DEVICE_STATE_FD]: { transfer: DeviceStateTransfer };
  [R.CHECK_DEVICE_STATE]: {};
}

/** A request of code K as the front-end sent it. */
export type RequestOf<K extends R> = { request: K; flags: number; needReply: boolean } & RequestBodies[K];

/** Any decoded front-end request; switch on `request` to narrow. */
export type Request = { [K in R]: RequestOf<K> }[R];

/** What the test front-end passes to encodeRequest: a request without header flags. */
export type RequestInput = { [K in R]: { request: K; needReply?: boolean } & RequestBodies[K] }[R];
