import test from 'ava';

import {
  CATALOG,
  FrontendRequest as R,
  PAYLOAD_SIZES,
  ProtocolError,
  decodeReply,
  decodeReplyAck,
  decodeRequest,
  encodeReply,
  encodeReplyAck,
  encodeRequest,
  type Request,
  type RequestInput,
  type ReplyPayloads,
  type RepliedRequest,
} from '../../src/protocol/index.ts';
import { concat, message, u16le, u32le, u64le, zeros } from './bytes.ts';
import { FIXTURES } from './fixtures.ts';

const REPLY = 0x5; // VERSION | REPLY

function toInput(request: Request): RequestInput {
  const { flags: _flags, ...input } = request;
  return input as RequestInput;
}

for (const fixture of FIXTURES) {
  test(`encodeRequest reproduces the ${fixture.title} fixture and round-trips`, (t) => {
    const bytes = encodeRequest(toInput(fixture.expected));
    t.deepEqual(bytes, fixture.msg);
    t.deepEqual(decodeRequest(bytes, fixture.fds), fixture.expected);
  });
}

const REGION = { guestPhysAddr: 0x1000n, memorySize: 0x2000n, userspaceAddr: 0x7f00_0000_0000n, mmapOffset: 0n };

/** A sample reply payload for every replied request, with the bytes it must encode to. */
const REPLIES: { [K in RepliedRequest]: [ReplyPayloads[K], Uint8Array] } = {
  [R.GET_FEATURES]: [0x1_7020_8003n, u64le(0x1_7020_8003n)],
  [R.SET_MEM_TABLE]: [{ numRegions: 1, padding: 0, regions: [REGION] }, concat(u32le(1), u32le(0), u64le(0x1000n), u64le(0x2000n), u64le(0x7f00_0000_0000n), u64le(0n))],
  [R.SET_LOG_BASE]: [0n, u64le(0n)],
  [R.GET_VRING_BASE]: [{ index: 1, num: 0x1234 }, concat(u32le(1), u32le(0x1234))],
  [R.GET_PROTOCOL_FEATURES]: [0x8609n, u64le(0x8609n)],
  [R.GET_QUEUE_NUM]: [4n, u64le(4n)],
  [R.IOTLB_MSG]: [0n, u64le(0n)],
  [R.GET_CONFIG]: [{ offset: 0, size: 6, flags: 0, payload: Uint8Array.of(0x52, 0x54, 0, 1, 2, 3) }, concat(u32le(0), u32le(6), u32le(0), Uint8Array.of(0x52, 0x54, 0, 1, 2, 3))],
  [R.CREATE_CRYPTO_SESSION]: [Uint8Array.of(9, 9), Uint8Array.of(9, 9)],
  [R.POSTCOPY_ADVISE]: [null, zeros(0)],
  [R.POSTCOPY_END]: [0n, u64le(0n)],
  [R.GET_INFLIGHT_FD]: [{ mmapSize: 0x1_0000n, mmapOffset: 0n, numQueues: 2, queueSize: 256 }, concat(u64le(0x1_0000n), u64le(0n), u16le(2), u16le(256), zeros(4))],
  [R.GET_MAX_MEM_SLOTS]: [509n, u64le(509n)],
  [R.ADD_MEM_REG]: [{ padding: 0n, region: REGION }, concat(u64le(0n), u64le(0x1000n), u64le(0x2000n), u64le(0x7f00_0000_0000n), u64le(0n))],
  [R.GET_STATUS]: [0xfn, u64le(0xfn)],
  [R.GET_SHARED_OBJECT]: [null, zeros(0)],
  [R.SET_DEVICE_STATE_FD]: [0x100n, u64le(0x100n)],
  [R.CHECK_DEVICE_STATE]: [0n, u64le(0n)],
};

for (const key of Object.keys(REPLIES)) {
  const request = Number(key) as RepliedRequest;
  const [payload, bytes] = REPLIES[request];
  test(`encodeReply ${R[request]}: bytes, REPLY flag, catalog size, round trip`, (t) => {
    const encoded = encodeReply(request, payload as never);
    t.deepEqual(encoded, message(request, REPLY, bytes));
    const entry = CATALOG.get(request)!;
    t.not(entry.reply, 'never');
    const sizes = PAYLOAD_SIZES[entry.replyPayload!];
    t.true(bytes.length >= sizes.min && bytes.length <= sizes.max);
    t.deepEqual(decodeReply(encoded, request), payload);
  });

  test(`decodeReply ${R[request]}: every truncation is a ProtocolError`, (t) => {
    const encoded = encodeReply(request, payload as never);
    for (let length = 0; length < encoded.length; length++) {
      const error = t.throws(() => decodeReply(encoded.slice(0, length), request), { instanceOf: ProtocolError }, `cut at ${length}`);
      t.is(error?.code, length < 12 ? 'VU_ERR_BAD_HEADER' : 'VU_ERR_BAD_SIZE', `cut at ${length}`);
    }
  });
}

test('every request with a reply of its own has a reply encoder, and no other', (t) => {
  const withReply = [...CATALOG.values()].filter((e) => e.reply !== 'never').map((e) => e.code);
  t.deepEqual(Object.keys(REPLIES).map(Number).sort((a, b) => a - b), withReply);
});

test('encodeReplyAck: u64 status with REPLY set, for any request', (t) => {
  t.deepEqual(encodeReplyAck(R.SET_VRING_ADDR, 0n), message(R.SET_VRING_ADDR, REPLY, u64le(0n)));
  t.deepEqual(encodeReplyAck(R.NET_SET_MTU, 1n), message(R.NET_SET_MTU, REPLY, u64le(1n)));
  t.is(decodeReplyAck(encodeReplyAck(R.SET_MEM_TABLE, 5n), R.SET_MEM_TABLE), 5n);
});

test('decodeReply rejects a request, a reply to another request and a short reply', (t) => {
  t.is(t.throws(() => decodeReply(message(R.GET_FEATURES, 0x1, u64le(1n)), R.GET_FEATURES), { instanceOf: ProtocolError })?.code, 'VU_ERR_BAD_REPLY');
  t.is(t.throws(() => decodeReply(message(R.GET_STATUS, REPLY, u64le(1n)), R.GET_FEATURES), { instanceOf: ProtocolError })?.code, 'VU_ERR_BAD_REPLY');
  t.is(t.throws(() => decodeReply(message(R.GET_FEATURES, REPLY, u32le(1)), R.GET_FEATURES), { instanceOf: ProtocolError })?.code, 'VU_ERR_BAD_SIZE');
  t.is(t.throws(() => decodeReplyAck(message(R.SET_OWNER, REPLY), R.SET_OWNER), { instanceOf: ProtocolError })?.code, 'VU_ERR_BAD_SIZE');
});

test('encoders refuse values that do not fit their field', (t) => {
  const bad = (fn: () => unknown): void => {
    t.is(t.throws(fn, { instanceOf: ProtocolError })?.code, 'VU_ERR_BAD_VALUE');
  };
  bad(() => encodeRequest({ request: R.SET_VRING_NUM, state: { index: 2 ** 32, num: 0 } }));
  bad(() => encodeRequest({ request: R.SET_VRING_NUM, state: { index: -1, num: 0 } }));
  bad(() => encodeRequest({ request: R.SET_FEATURES, features: 1n << 64n }));
  bad(() => encodeRequest({ request: R.SET_FEATURES, features: -1n }));
  bad(() => encodeRequest({ request: R.SET_VRING_KICK, file: { index: 256, noFd: false } }));
  bad(() => encodeRequest({ request: R.SEND_RARP, mac: zeros(8) }));
  bad(() => encodeRequest({ request: R.GET_SHARED_OBJECT, shared: { uuid: zeros(15) } }));
  bad(() => encodeRequest({ request: R.SET_MEM_TABLE, memTable: { numRegions: 2, padding: 0, regions: [REGION] } }));
  bad(() => encodeRequest({ request: R.SET_MEM_TABLE, memTable: { numRegions: 9, padding: 0, regions: Array(9).fill(REGION) } }));
  bad(() => encodeReply(R.GET_CONFIG, { offset: 0, size: 8, flags: 0, payload: zeros(4) }));
  bad(() => encodeReply(R.GET_CONFIG, { offset: 0, size: 8, flags: 0, payload: zeros(257) }));
  bad(() => encodeReply(R.CREATE_CRYPTO_SESSION, zeros(4097)));
});
