// decodeRequest(): one front-end message (header + payload, exactly as received) to a typed
// Request. Syntax checks only, in this order: header, request code, header size against the
// bytes present, payload size against the catalog, payload fields, fd count. Semantic checks
// (region overlap, ring sizes, negotiated features) belong to the session.

import { CATALOG, PAYLOAD_SIZES, type CatalogEntry } from './catalog.ts';
import { ProtocolError } from './errors.ts';
import { VHOST_USER_HDR_SIZE, VHOST_USER_NEED_REPLY_MASK, VHOST_USER_REPLY_MASK, decodeHeader } from './header.ts';
import {
  decodeConfigSpace,
  decodeDeviceStateTransfer,
  decodeInflight,
  decodeIotlbMsg,
  decodeLog,
  decodeMemTable,
  decodeRarpMac,
  decodeSharedObject,
  decodeSingleMemReg,
  decodeVringAddr,
  decodeVringFile,
  decodeVringState,
} from './payloads.ts';
import type { Request, RequestBodies } from './request-types.ts';
import { FrontendRequest as R, requestName } from './requests.ts';
import { PayloadReader } from './wire.ts';

type BodyDecoder<K extends R> = (r: PayloadReader, name: string) => RequestBodies[K];

const none = (): {} => ({});

/** One payload decoder per request: the dispatch table of the codec. */
const BODY_DECODERS: { [K in R]: BodyDecoder<K> } = {
  [R.GET_FEATURES]: none,
  [R.SET_FEATURES]: (r) => ({ features: r.u64() }),
  [R.SET_OWNER]: none,
  [R.RESET_OWNER]: none,
  [R.SET_MEM_TABLE]: (r, name) => ({ memTable: decodeMemTable(r, name) }),
  [R.SET_LOG_BASE]: (r) => ({ log: decodeLog(r) }),
  [R.SET_LOG_FD]: none,
  [R.SET_VRING_NUM]: (r) => ({ state: decodeVringState(r) }),
  [R.SET_VRING_ADDR]: (r) => ({ addr: decodeVringAddr(r) }),
  [R.SET_VRING_BASE]: (r) => ({ state: decodeVringState(r) }),
  [R.GET_VRING_BASE]: (r) => ({ state: decodeVringState(r) }),
  [R.SET_VRING_KICK]: (r, name) => ({ file: decodeVringFile(r, name) }),
  [R.SET_VRING_CALL]: (r, name) => ({ file: decodeVringFile(r, name) }),
  [R.SET_VRING_ERR]: (r, name) => ({ file: decodeVringFile(r, name) }),
  [R.GET_PROTOCOL_FEATURES]: none,
  [R.SET_PROTOCOL_FEATURES]: (r) => ({ features: r.u64() }),
  [R.GET_QUEUE_NUM]: none,
  [R.SET_VRING_ENABLE]: (r) => ({ state: decodeVringState(r) }),
  [R.SEND_RARP]: (r) => ({ mac: decodeRarpMac(r) }),
  [R.NET_SET_MTU]: (r) => ({ mtu: r.u64() }),
  [R.SET_BACKEND_REQ_FD]: none,
  [R.IOTLB_MSG]: (r) => ({ iotlb: decodeIotlbMsg(r) }),
  [R.SET_VRING_ENDIAN]: (r) => ({ state: decodeVringState(r) }),
  [R.GET_CONFIG]: (r, name) => ({ config: decodeConfigSpace(r, name) }),
  [R.SET_CONFIG]: (r, name) => ({ config: decodeConfigSpace(r, name) }),
  [R.CREATE_CRYPTO_SESSION]: (r) => ({ session: r.bytesCopy(r.remaining) }),
  [R.CLOSE_CRYPTO_SESSION]: (r) => ({ sessionId: r.u64() }),
  [R.POSTCOPY_ADVISE]: none,
  [R.POSTCOPY_LISTEN]: none,
  [R.POSTCOPY_END]: none,
  [R.GET_INFLIGHT_FD]: (r) => ({ inflight: decodeInflight(r) }),
  [R.SET_INFLIGHT_FD]: (r) => ({ inflight: decodeInflight(r) }),
  [R.GPU_SET_SOCKET]: none,
  [R.RESET_DEVICE]: none,
  [R.VRING_KICK]: (r) => ({ state: decodeVringState(r) }),
  [R.GET_MAX_MEM_SLOTS]: none,
  [R.ADD_MEM_REG]: (r) => ({ memReg: decodeSingleMemReg(r) }),
  [R.REM_MEM_REG]: (r) => ({ memReg: decodeSingleMemReg(r) }),
  [R.SET_STATUS]: (r) => ({ status: r.u64() }),
  [R.GET_STATUS]: none,
  [R.GET_SHARED_OBJECT]: (r) => ({ shared: decodeSharedObject(r) }),
  [R.SET_DEVICE_STATE_FD]: (r) => ({ transfer: decodeDeviceStateTransfer(r) }),
  [R.CHECK_DEVICE_STATE]: none,
};

/**
 * decodeRequest() - decode one front-end request
 * @msg: the whole message, header included, exactly the bytes received for it
 * @fdCount: number of fds received with it (SCM_RIGHTS); on any error the caller closes them
 * Throws ProtocolError (never anything else) if the message is not well-formed.
 */
export function decodeRequest(msg: Uint8Array, fdCount: number): Request {
  const header = decodeHeader(msg);
  const name = requestName(header.request);
  if ((header.flags & VHOST_USER_REPLY_MASK) !== 0) {
    throw new ProtocolError('VU_ERR_BAD_HEADER', 'REPLY flag set on a front-end request', name);
  }
  const entry = CATALOG.get(header.request as R);
  if (entry === undefined) {
    throw new ProtocolError('VU_ERR_UNKNOWN_REQUEST', `request code ${header.request} is not a front-end message type`, name);
  }
  const present = msg.length - VHOST_USER_HDR_SIZE;
  if (header.size !== present) {
    throw new ProtocolError('VU_ERR_BAD_SIZE', `header size ${header.size} but ${present} payload bytes present`, name);
  }
  const allowed = PAYLOAD_SIZES[entry.payload];
  if (header.size < allowed.min || header.size > allowed.max) {
    const expected = allowed.min === allowed.max ? `${allowed.min}` : `${allowed.min}..${allowed.max}`;
    throw new ProtocolError('VU_ERR_BAD_SIZE', `payload of ${header.size} bytes, ${entry.payload} needs ${expected}`, name);
  }
  const reader = new PayloadReader(msg.subarray(VHOST_USER_HDR_SIZE), name);
  const body = (BODY_DECODERS[entry.code] as BodyDecoder<R>)(reader, name);
  if (reader.remaining !== 0) {
    // Unreachable while the catalog sizes and the payload decoders agree (checked by a test).
    throw new ProtocolError('VU_ERR_BAD_SIZE', `${reader.remaining} payload bytes left after ${entry.payload}`, name);
  }
  checkFdCount(entry, body, fdCount, name);
  return {
    request: entry.code,
    flags: header.flags,
    needReply: (header.flags & VHOST_USER_NEED_REPLY_MASK) !== 0,
    ...body,
  } as Request;
}

function checkFdCount(entry: CatalogEntry, body: RequestBodies[R], fdCount: number, name: string): void {
  let expected: number[];
  switch (entry.fds) {
    case 'none':
      expected = [0];
      break;
    case 'one':
      expected = [1];
      break;
    case 'optional':
      expected = [0, 1];
      break;
    case 'perRegion':
      expected = [(body as RequestBodies[R.SET_MEM_TABLE]).memTable.numRegions];
      break;
    case 'unlessNofd':
      expected = [(body as RequestBodies[R.SET_VRING_KICK]).file.noFd ? 0 : 1];
      break;
  }
  if (!expected.includes(fdCount)) {
    throw new ProtocolError('VU_ERR_BAD_FDS', `${fdCount} fds received, expected ${expected.join(' or ')}`, name);
  }
}
