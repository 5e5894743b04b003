// The request catalog: for every front-end request, its payload kind, allowed payload sizes,
// the fds it carries and whether the back-end replies. spec/requests.json is the same table as
// data, written from the spec; test/protocol/catalog.test.ts checks the two agree and that the
// payload codecs produce exactly these sizes.

import { FrontendRequest } from './requests.ts';
import {
  CRYPTO_SESSION_MAX_SIZE,
  DEVICE_STATE_TRANSFER_SIZE,
  INFLIGHT_SIZE,
  IOTLB_MSG_SIZE,
  LOG_SIZE,
  MEM_TABLE_HEADER_SIZE,
  SHARED_OBJECT_SIZE,
  SINGLE_MEM_REG_SIZE,
  U64_SIZE,
  VHOST_MEMORY_BASELINE_NREGIONS,
  VHOST_USER_CONFIG_HDR_SIZE,
  VHOST_USER_MAX_CONFIG_SIZE,
  VRING_ADDR_SIZE,
  VRING_STATE_SIZE,
  memTableSize,
} from './payloads.ts';

export type PayloadKind =
  | 'none'
  | 'u64'
  | 'VringState'
  | 'VringAddr'
  | 'VringFile'
  | 'MemTable'
  | 'SingleMemReg'
  | 'Log'
  | 'IotlbMsg'
  | 'ConfigSpace'
  | 'CryptoSession'
  | 'Inflight'
  | 'SharedObject'
  | 'DeviceStateTransfer'
  | 'Mac';

/** Allowed payload sizes of each kind (inclusive); relational rules are checked by the payload decoder. */
export const PAYLOAD_SIZES: Readonly<Record<PayloadKind, { min: number; max: number }>> = {
  none: { min: 0, max: 0 },
  u64: { min: U64_SIZE, max: U64_SIZE },
  VringState: { min: VRING_STATE_SIZE, max: VRING_STATE_SIZE },
  VringAddr: { min: VRING_ADDR_SIZE, max: VRING_ADDR_SIZE },
  VringFile: { min: U64_SIZE, max: U64_SIZE },
  MemTable: { min: MEM_TABLE_HEADER_SIZE, max: memTableSize(VHOST_MEMORY_BASELINE_NREGIONS) },
  SingleMemReg: { min: SINGLE_MEM_REG_SIZE, max: SINGLE_MEM_REG_SIZE },
  Log: { min: LOG_SIZE, max: LOG_SIZE },
  IotlbMsg: { min: IOTLB_MSG_SIZE, max: IOTLB_MSG_SIZE },
  ConfigSpace: { min: VHOST_USER_CONFIG_HDR_SIZE, max: VHOST_USER_CONFIG_HDR_SIZE + VHOST_USER_MAX_CONFIG_SIZE },
  CryptoSession: { min: 0, max: CRYPTO_SESSION_MAX_SIZE },
  Inflight: { min: INFLIGHT_SIZE, max: INFLIGHT_SIZE },
  SharedObject: { min: SHARED_OBJECT_SIZE, max: SHARED_OBJECT_SIZE },
  DeviceStateTransfer: { min: DEVICE_STATE_TRANSFER_SIZE, max: DEVICE_STATE_TRANSFER_SIZE },
  Mac: { min: U64_SIZE, max: U64_SIZE },
};

/** How many fds come with a request (see spec/requests.json "fdKinds"). */
export type FdKind = 'none' | 'one' | 'optional' | 'perRegion' | 'unlessNofd';
/** Does the back-end send a reply of its own (besides the REPLY_ACK ack any request may ask for)? */
export type ReplyKind = 'always' | 'conditional' | 'never';

export interface CatalogEntry {
  code: FrontendRequest;
  name: string;
  payload: PayloadKind;
  fds: FdKind;
  reply: ReplyKind;
  /** Present unless reply is 'never'. */
  replyPayload?: PayloadKind;
  replyFds?: 'none' | 'one' | 'optional';
}

const R = FrontendRequest;
type Row = [FrontendRequest, PayloadKind, FdKind, ReplyKind, PayloadKind?, ('none' | 'one' | 'optional')?];

// request                    payload                fds           reply          reply payload    reply fds
const ROWS: Row[] = [
  [R.GET_FEATURES,            'none',                'none',       'always',      'u64',           'none'],
  [R.SET_FEATURES,            'u64',                 'none',       'never'],
  [R.SET_OWNER,               'none',                'none',       'never'],
  [R.RESET_OWNER,             'none',                'none',       'never'],
  [R.SET_MEM_TABLE,           'MemTable',            'perRegion',  'conditional', 'MemTable',      'none'],
  [R.SET_LOG_BASE,            'Log',                 'optional',   'conditional', 'u64',           'none'],
  [R.SET_LOG_FD,              'none',                'one',        'never'],
  [R.SET_VRING_NUM,           'VringState',          'none',       'never'],
  [R.SET_VRING_ADDR,          'VringAddr',           'none',       'never'],
  [R.SET_VRING_BASE,          'VringState',          'none',       'never'],
  [R.GET_VRING_BASE,          'VringState',          'none',       'always',      'VringState',    'none'],
  [R.SET_VRING_KICK,          'VringFile',           'unlessNofd', 'never'],
  [R.SET_VRING_CALL,          'VringFile',           'unlessNofd', 'never'],
  [R.SET_VRING_ERR,           'VringFile',           'unlessNofd', 'never'],
  [R.GET_PROTOCOL_FEATURES,   'none',                'none',       'always',      'u64',           'none'],
  [R.SET_PROTOCOL_FEATURES,   'u64',                 'none',       'never'],
  [R.GET_QUEUE_NUM,           'none',                'none',       'always',      'u64',           'none'],
  [R.SET_VRING_ENABLE,        'VringState',          'none',       'never'],
  [R.SEND_RARP,               'Mac',                 'none',       'never'],
  [R.NET_SET_MTU,             'u64',                 'none',       'never'],
  [R.SET_BACKEND_REQ_FD,      'none',                'one',        'never'],
  [R.IOTLB_MSG,               'IotlbMsg',            'none',       'always',      'u64',           'none'],
  [R.SET_VRING_ENDIAN,        'VringState',          'none',       'never'],
  [R.GET_CONFIG,              'ConfigSpace',         'none',       'always',      'ConfigSpace',   'none'],
  [R.SET_CONFIG,              'ConfigSpace',         'none',       'never'],
  [R.CREATE_CRYPTO_SESSION,   'CryptoSession',       'none',       'always',      'CryptoSession', 'none'],
  [R.CLOSE_CRYPTO_SESSION,    'u64',                 'none',       'never'],
  [R.POSTCOPY_ADVISE,         'none',                'none',       'always',      'none',          'one'],
  [R.POSTCOPY_LISTEN,         'none',                'none',       'never'],
  [R.POSTCOPY_END,            'none',                'none',       'always',      'u64',           'none'],
  [R.GET_INFLIGHT_FD,         'Inflight',            'none',       'always',      'Inflight',      'one'],
  [R.SET_INFLIGHT_FD,         'Inflight',            'one',        'never'],
  [R.GPU_SET_SOCKET,          'none',                'one',        'never'],
  [R.RESET_DEVICE,            'none',                'none',       'never'],
  [R.VRING_KICK,              'VringState',          'none',       'never'],
  [R.GET_MAX_MEM_SLOTS,       'none',                'none',       'always',      'u64',           'none'],
  [R.ADD_MEM_REG,             'SingleMemReg',        'one',        'conditional', 'SingleMemReg',  'none'],
  [R.REM_MEM_REG,             'SingleMemReg',        'optional',   'never'],
  [R.SET_STATUS,              'u64',                 'none',       'never'],
  [R.GET_STATUS,              'none',                'none',       'always',      'u64',           'none'],
  [R.GET_SHARED_OBJECT,       'SharedObject',        'none',       'always',      'none',          'optional'],
  [R.SET_DEVICE_STATE_FD,     'DeviceStateTransfer', 'one',        'always',      'u64',           'optional'],
  [R.CHECK_DEVICE_STATE,      'none',                'none',       'always',      'u64',           'none'],
];

/** Catalog entries indexed by request code. */
export const CATALOG: ReadonlyMap<FrontendRequest, CatalogEntry> = new Map(
  ROWS.map(([code, payload, fds, reply, replyPayload, replyFds]): [FrontendRequest, CatalogEntry] => [
    code,
    {
      code,
      name: FrontendRequest[code],
      payload,
      fds,
      reply,
      ...(replyPayload === undefined ? {} : { replyPayload }),
      ...(replyFds === undefined ? {} : { replyFds }),
    },
  ]),
);

/** The catalog entry of a request code, or undefined for codes the spec does not define. */
export function catalogEntry(code: number): CatalogEntry | undefined {
  return CATALOG.get(code as FrontendRequest);
}

/** Largest payload any request may carry: the transport can refuse a bigger `size` before reading it. */
export const VHOST_USER_MAX_PAYLOAD_SIZE = Math.max(...[...CATALOG.values()].map((e) => PAYLOAD_SIZES[e.payload].max));
