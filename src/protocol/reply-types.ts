// The payload of each back-end reply that is not a plain REPLY_ACK, by request code.

import type { FrontendRequest as R } from './requests.ts';
import type { ConfigSpace, Inflight, MemTable, SingleMemReg, VringState } from './payloads.ts';

export interface ReplyPayloads {
  [R.GET_FEATURES]: bigint;
  [R.SET_MEM_TABLE]: MemTable;
  [R.SET_LOG_BASE]: bigint;
  [R.GET_VRING_BASE]: VringState;
  [R.GET_PROTOCOL_FEATURES]: bigint;
  [R.GET_QUEUE_NUM]: bigint;
  [R.IOTLB_MSG]: bigint;
  [R.GET_CONFIG]: ConfigSpace;
  [R.CREATE_CRYPTO_SESSION]: Uint8Array;
  /** No payload: the userfaultfd travels as the reply's fd. */
  [R.POSTCOPY_ADVISE]: null;
  [R.POSTCOPY_END]: bigint;
  [R.GET_INFLIGHT_FD]: Inflight;
  [R.GET_MAX_MEM_SLOTS]: bigint;
  [R.ADD_MEM_REG]: SingleMemReg;
  [R.GET_STATUS]: bigint;
  /** No payload: the dma-buf fd (if any) travels as the reply's fd. */
  [R.GET_SHARED_OBJECT]: null;
  /** Bits 0–7: error (0 = success); bit 8: no fd returned. */
  [R.SET_DEVICE_STATE_FD]: bigint;
  [R.CHECK_DEVICE_STATE]: bigint;
}

/** Requests the back-end answers with a reply of their own (catalog reply 'always' or 'conditional'). */
export type RepliedRequest = keyof ReplyPayloads;
