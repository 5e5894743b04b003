// Encoders: replies for the back-end (REPLY flag set) and requests for the test front-end that
// plays QEMU. Each returns the whole message, header included; fds travel beside it.

import { ProtocolError } from './errors.ts';
import { VHOST_USER_NEED_REPLY_MASK, VHOST_USER_REPLY_MASK, VHOST_USER_VERSION, encodeHeader } from './header.ts';
import {
  CRYPTO_SESSION_MAX_SIZE,
  encodeConfigSpace,
  encodeDeviceStateTransfer,
  encodeInflight,
  encodeIotlbMsg,
  encodeLog,
  encodeMemTable,
  encodeRarpMac,
  encodeSharedObject,
  encodeSingleMemReg,
  encodeVringAddr,
  encodeVringFile,
  encodeVringState,
} from './payloads.ts';
import type { ReplyPayloads, RepliedRequest } from './reply-types.ts';
import type { RequestBodies, RequestInput } from './request-types.ts';
import { FrontendRequest as R } from './requests.ts';
import { PayloadWriter } from './wire.ts';

type BodyEncoder<K extends R> = (w: PayloadWriter, body: RequestBodies[K]) => void;

const none = (): void => {};

function encodeOpaque(w: PayloadWriter, bytes: Uint8Array): void {
  if (bytes.length > CRYPTO_SESSION_MAX_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `crypto session of ${bytes.length} bytes, at most ${CRYPTO_SESSION_MAX_SIZE}`);
  }
  w.raw(bytes);
}

const BODY_ENCODERS: { [K in R]: BodyEncoder<K> } = {
  [R.GET_FEATURES]: none,
  [R.SET_FEATURES]: (w, b) => void w.u64(b.features),
  [R.SET_OWNER]: none,
  [R.RESET_OWNER]: none,
  [R.SET_MEM_TABLE]: (w, b) => encodeMemTable(w, b.memTable),
  [R.SET_LOG_BASE]: (w, b) => encodeLog(w, b.log),
  [R.SET_LOG_FD]: none,
  [R.SET_VRING_NUM]: (w, b) => encodeVringState(w, b.state),
  [R.SET_VRING_ADDR]: (w, b) => encodeVringAddr(w, b.addr),
  [R.SET_VRING_BASE]: (w, b) => encodeVringState(w, b.state),
  [R.GET_VRING_BASE]: (w, b) => encodeVringState(w, b.state),
  [R.SET_VRING_KICK]: (w, b) => encodeVringFile(w, b.file),
  [R.SET_VRING_CALL]: (w, b) => encodeVringFile(w, b.file),
  [R.SET_VRING_ERR]: (w, b) => encodeVringFile(w, b.file),
  [R.GET_PROTOCOL_FEATURES]: none,
  [R.SET_PROTOCOL_FEATURES]: (w, b) => void w.u64(b.features),
  [R.GET_QUEUE_NUM]: none,
  [R.SET_VRING_ENABLE]: (w, b) => encodeVringState(w, b.state),
  [R.SEND_RARP]: (w, b) => encodeRarpMac(w, b.mac),
  [R.NET_SET_MTU]: (w, b) => void w.u64(b.mtu),
  [R.SET_BACKEND_REQ_FD]: none,
  [R.IOTLB_MSG]: (w, b) => encodeIotlbMsg(w, b.iotlb),
  [R.SET_VRING_ENDIAN]: (w, b) => encodeVringState(w, b.state),
  [R.GET_CONFIG]: (w, b) => encodeConfigSpace(w, b.config),
  [R.SET_CONFIG]: (w, b) => encodeConfigSpace(w, b.config),
  [R.CREATE_CRYPTO_SESSION]: (w, b) => encodeOpaque(w, b.session),
  [R.CLOSE_CRYPTO_SESSION]: (w, b) => void w.u64(b.sessionId),
  [R.POSTCOPY_ADVISE]: none,
  [R.POSTCOPY_LISTEN]: none,
  [R.POSTCOPY_END]: none,
  [R.GET_INFLIGHT_FD]: (w, b) => encodeInflight(w, b.inflight),
  [R.SET_INFLIGHT_FD]: (w, b) => encodeInflight(w, b.inflight),
  [R.GPU_SET_SOCKET]: none,
  [R.RESET_DEVICE]: none,
  [R.VRING_KICK]: (w, b) => encodeVringState(w, b.state),
  [R.GET_MAX_MEM_SLOTS]: none,
  [R.ADD_MEM_REG]: (w, b) => encodeSingleMemReg(w, b.memReg),
  [R.REM_MEM_REG]: (w, b) => encodeSingleMemReg(w, b.memReg),
  [R.SET_STATUS]: (w, b) => void w.u64(b.status),
  [R.GET_STATUS]: none,
  [R.GET_SHARED_OBJECT]: (w, b) => encodeSharedObject(w, b.shared),
  [R.SET_DEVICE_STATE_FD]: (w, b) => encodeDeviceStateTransfer(w, b.transfer),
  [R.CHECK_DEVICE_STATE]: none,
};

type ReplyEncoder<K extends RepliedRequest> = (w: PayloadWriter, payload: ReplyPayloads[K]) => void;

const u64 = (w: PayloadWriter, value: bigint): void => void w.u64(value);

/** One reply encoder per replied request; payload kinds as in the catalog's replyPayload. */
const REPLY_ENCODERS: { [K in RepliedRequest]: ReplyEncoder<K> } = {
  [R.GET_FEATURES]: u64,
  [R.SET_MEM_TABLE]: encodeMemTable,
  [R.SET_LOG_BASE]: u64,
  [R.GET_VRING_BASE]: encodeVringState,
  [R.GET_PROTOCOL_FEATURES]: u64,
  [R.GET_QUEUE_NUM]: u64,
  [R.IOTLB_MSG]: u64,
  [R.GET_CONFIG]: encodeConfigSpace,
  [R.CREATE_CRYPTO_SESSION]: encodeOpaque,
  [R.POSTCOPY_ADVISE]: none,
  [R.POSTCOPY_END]: u64,
  [R.GET_INFLIGHT_FD]: encodeInflight,
  [R.GET_MAX_MEM_SLOTS]: u64,
  [R.ADD_MEM_REG]: encodeSingleMemReg,
  [R.GET_STATUS]: u64,
  [R.GET_SHARED_OBJECT]: none,
  [R.SET_DEVICE_STATE_FD]: u64,
  [R.CHECK_DEVICE_STATE]: u64,
};

function message(request: R, flags: number, payload: Uint8Array): Uint8Array {
  const header = encodeHeader({ request, flags, size: payload.length });
  const msg = new Uint8Array(header.length + payload.length);
  msg.set(header);
  msg.set(payload, header.length);
  return msg;
}

/**
 * encodeReply() - the back-end's reply to `request`, REPLY flag set
 * For GET_CONFIG, pass a ConfigSpace whose payload has the request's payload length.
 */
export function encodeReply<K extends RepliedRequest>(request: K, payload: ReplyPayloads[K]): Uint8Array {
  const w = new PayloadWriter();
  (REPLY_ENCODERS[request] as ReplyEncoder<K>)(w, payload);
  return message(request, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, w.finish());
}

/**
 * encodeReplyAck() - the REPLY_ACK reply (u64: 0 success, non-zero failure) to any request
 * sent with NEED_REPLY, unless the request already has a reply of its own.
 */
export function encodeReplyAck(request: R, status: bigint): Uint8Array {
  return message(request, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, new PayloadWriter().u64(status).finish());
}

/** encodeRequest() - a front-end request (for the test front-end); NEED_REPLY if `needReply`. */
export function encodeRequest(input: RequestInput): Uint8Array {
  const w = new PayloadWriter();
  (BODY_ENCODERS[input.request] as BodyEncoder<R>)(w, input as RequestBodies[R]);
  const flags = VHOST_USER_VERSION | (input.needReply === true ? VHOST_USER_NEED_REPLY_MASK : 0);
  return message(input.request, flags, w.finish());
}
