// Reply decoders for the test front-end (the side that plays QEMU): check that a message is the
// back-end's reply to the request just sent, and decode its payload.

import { CATALOG, PAYLOAD_SIZES } from './catalog.ts';
import { ProtocolError } from './errors.ts';
import { VHOST_USER_HDR_SIZE, VHOST_USER_REPLY_MASK, decodeHeader } from './header.ts';
import { decodeConfigSpace, decodeInflight, decodeMemTable, decodeSingleMemReg, decodeVringState } from './payloads.ts';
import type { ReplyPayloads, RepliedRequest } from './reply-types.ts';
import { FrontendRequest as R, requestName } from './requests.ts';
import { PayloadReader } from './wire.ts';

type ReplyDecoder<K extends RepliedRequest> = (r: PayloadReader, name: string) => ReplyPayloads[K];

const u64 = (r: PayloadReader): bigint => r.u64();
const nothing = (): null => null;

const REPLY_DECODERS: { [K in RepliedRequest]: ReplyDecoder<K> } = {
  [R.GET_FEATURES]: u64,
  [R.SET_MEM_TABLE]: decodeMemTable,
  [R.SET_LOG_BASE]: u64,
  [R.GET_VRING_BASE]: decodeVringState,
  [R.GET_PROTOCOL_FEATURES]: u64,
  [R.GET_QUEUE_NUM]: u64,
  [R.IOTLB_MSG]: u64,
  [R.GET_CONFIG]: decodeConfigSpace,
  [R.CREATE_CRYPTO_SESSION]: (r) => r.bytesCopy(r.remaining),
  [R.POSTCOPY_ADVISE]: nothing,
  [R.POSTCOPY_END]: u64,
  [R.GET_INFLIGHT_FD]: decodeInflight,
  [R.GET_MAX_MEM_SLOTS]: u64,
  [R.ADD_MEM_REG]: decodeSingleMemReg,
  [R.GET_STATUS]: u64,
  [R.GET_SHARED_OBJECT]: nothing,
  [R.SET_DEVICE_STATE_FD]: u64,
  [R.CHECK_DEVICE_STATE]: u64,
};

/** Check header, REPLY flag, request code and size; return a reader over the payload. */
function replyPayload(msg: Uint8Array, request: R, sizes: { min: number; max: number }): PayloadReader {
  const header = decodeHeader(msg);
  const name = requestName(request);
  if ((header.flags & VHOST_USER_REPLY_MASK) === 0) {
    throw new ProtocolError('VU_ERR_BAD_REPLY', 'REPLY flag not set', name);
  }
  if (header.request !== request) {
    throw new ProtocolError('VU_ERR_BAD_REPLY', `reply is for ${requestName(header.request)}`, name);
  }
  const present = msg.length - VHOST_USER_HDR_SIZE;
  if (header.size !== present) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `header size ${header.size} but ${present} payload bytes present`, name);
  }
  if (header.size < sizes.min || header.size > sizes.max) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `reply payload of ${header.size} bytes, expected ${sizes.min}..${sizes.max}`, name);
  }
  return new PayloadReader(msg.subarray(VHOST_USER_HDR_SIZE), name);
}

/** decodeReply() - the back-end's reply to `request` (a request with a reply of its own). */
export function decodeReply<K extends RepliedRequest>(msg: Uint8Array, request: K): ReplyPayloads[K] {
  const entry = CATALOG.get(request);
  if (entry?.replyPayload === undefined) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', 'request has no reply payload', requestName(request));
  }
  const reader = replyPayload(msg, request, PAYLOAD_SIZES[entry.replyPayload]);
  const payload = (REPLY_DECODERS[request] as ReplyDecoder<K>)(reader, entry.name);
  if (reader.remaining !== 0) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `${reader.remaining} bytes left after the reply payload`, entry.name);
  }
  return payload;
}

/** decodeReplyAck() - the u64 status of a REPLY_ACK reply (0 = success). */
export function decodeReplyAck(msg: Uint8Array, request: R): bigint {
  return replyPayload(msg, request, PAYLOAD_SIZES.u64).u64();
}
