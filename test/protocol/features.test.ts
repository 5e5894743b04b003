import { readFileSync } from 'node:fs';

import test from 'ava';

import {
  FrontendRequest,
  VhostUserProtocolFeature,
  VirtioFeature,
  decodeHeader,
  decodePackedVringBase,
  describeFeatures,
  encodeHeader,
  encodePackedVringBase,
  featureMask,
  hasFeature,
  requestName,
} from '../../src/protocol/index.ts';

const features = JSON.parse(readFileSync(new URL('../../spec/features.json', import.meta.url), 'utf8')) as {
  protocolFeatures: Record<string, number>;
  virtioFeatures: Record<string, number>;
};

/** The name → bit pairs of a numeric enum. */
function enumEntries(e: object): Record<string, number> {
  return Object.fromEntries(Object.entries(e).filter(([, v]) => typeof v === 'number'));
}

test('protocol feature bits equal spec/features.json', (t) => {
  t.deepEqual(enumEntries(VhostUserProtocolFeature), features.protocolFeatures);
});

test('virtio feature bits equal spec/features.json', (t) => {
  t.deepEqual(enumEntries(VirtioFeature), features.virtioFeatures);
});

test('describeFeatures names set bits, lowest first, unknown bits as bitN', (t) => {
  const bits = featureMask(VirtioFeature.VIRTIO_F_VERSION_1, VirtioFeature.VIRTIO_NET_F_MRG_RXBUF, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES, 44);
  t.deepEqual(describeFeatures(bits, VirtioFeature), ['VIRTIO_NET_F_MRG_RXBUF', 'VHOST_USER_F_PROTOCOL_FEATURES', 'VIRTIO_F_VERSION_1', 'bit44']);
  t.deepEqual(describeFeatures(0x8009n, VhostUserProtocolFeature), ['MQ', 'REPLY_ACK', 'CONFIGURE_MEM_SLOTS']);
  t.deepEqual(describeFeatures(1n << 63n, VirtioFeature), ['VIRTIO_NET_F_SPEED_DUPLEX']);
  t.deepEqual(describeFeatures(0n, VirtioFeature), []);
});

test('featureMask / hasFeature', (t) => {
  t.is(featureMask(VirtioFeature.VIRTIO_F_VERSION_1), 1n << 32n);
  t.is(featureMask(), 0n);
  t.true(hasFeature(1n << 34n, VirtioFeature.VIRTIO_F_RING_PACKED));
  t.false(hasFeature(1n << 34n, VirtioFeature.VIRTIO_F_VERSION_1));
  t.throws(() => featureMask(64), { instanceOf: RangeError });
});

test('header encode/decode', (t) => {
  const bytes = encodeHeader({ request: FrontendRequest.SET_VRING_ADDR, flags: 0x9, size: 40 });
  t.deepEqual([...bytes], [9, 0, 0, 0, 9, 0, 0, 0, 40, 0, 0, 0]);
  t.deepEqual(decodeHeader(bytes), { request: 9, flags: 9, size: 40 });
  t.throws(() => encodeHeader({ request: 1, flags: 1, size: 2 ** 32 }), { code: 'VU_ERR_BAD_VALUE' } as never);
});

test('requestName', (t) => {
  t.is(requestName(9), 'SET_VRING_ADDR');
  t.is(requestName(21), 'SET_BACKEND_REQ_FD');
  t.is(requestName(0), 'UNKNOWN(0)');
  t.is(requestName(1.5), 'UNKNOWN(1.5)');
});

test('packed vring base: indices and wrap counters', (t) => {
  t.deepEqual(decodePackedVringBase(0x8001_8002), { availIdx: 2, availWrapCounter: true, usedIdx: 1, usedWrapCounter: true });
  t.deepEqual(decodePackedVringBase(0x7fff_7fff), { availIdx: 0x7fff, availWrapCounter: false, usedIdx: 0x7fff, usedWrapCounter: false });
  for (const num of [0, 0x8001_8002, 0x7fff_7fff, 0xffff_ffff, 0x0001_8000]) {
    t.is(encodePackedVringBase(decodePackedVringBase(num)), num);
  }
  t.throws(() => encodePackedVringBase({ availIdx: 0x8000, availWrapCounter: false, usedIdx: 0, usedWrapCounter: false }), { code: 'VU_ERR_BAD_VALUE' } as never);
});
