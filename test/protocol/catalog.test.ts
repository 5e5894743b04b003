import { readFileSync } from 'node:fs';

import test from 'ava';

import { CATALOG, FrontendRequest, PAYLOAD_SIZES, VHOST_USER_MAX_PAYLOAD_SIZE, catalogEntry } from '../../src/protocol/index.ts';
import { FIXTURES } from './fixtures.ts';

interface SpecRequest {
  code: number;
  name: string;
  payload: string;
  fds: string;
  reply: string;
  replyPayload?: string;
  replyFds?: string;
}

const spec = JSON.parse(readFileSync(new URL('../../spec/requests.json', import.meta.url), 'utf8')) as {
  headerSize: number;
  payloadKinds: Record<string, { min: number; max: number }>;
  fdKinds: Record<string, string>;
  requests: SpecRequest[];
};

test('spec/requests.json lists codes 1..43 once each, in order', (t) => {
  t.deepEqual(spec.requests.map((r) => r.code), Array.from({ length: 43 }, (_, i) => i + 1));
});

test('FrontendRequest names and codes equal spec/requests.json', (t) => {
  const fromEnum = Object.fromEntries(Object.entries(FrontendRequest).filter(([, v]) => typeof v === 'number'));
  t.deepEqual(fromEnum, Object.fromEntries(spec.requests.map((r) => [r.name, r.code])));
});

test('the codec catalog equals spec/requests.json', (t) => {
  const fromSpec = spec.requests.map(({ code, name, payload, fds, reply, replyPayload, replyFds }) => ({
    code,
    name,
    payload,
    fds,
    reply,
    ...(replyPayload === undefined ? {} : { replyPayload }),
    ...(replyFds === undefined ? {} : { replyFds }),
  }));
  t.deepEqual([...CATALOG.values()], fromSpec);
});

test('payload kind sizes equal spec/requests.json; every kind and fd kind used is defined there', (t) => {
  const sizes = Object.fromEntries(Object.entries(spec.payloadKinds).map(([k, v]) => [k, { min: v.min, max: v.max }]));
  t.deepEqual({ ...PAYLOAD_SIZES }, sizes);
  for (const entry of CATALOG.values()) {
    t.truthy(spec.fdKinds[entry.fds], entry.name);
    if (entry.reply !== 'never') t.truthy(entry.replyPayload && spec.payloadKinds[entry.replyPayload], entry.name);
  }
  t.is(spec.headerSize, 12);
  t.is(VHOST_USER_MAX_PAYLOAD_SIZE, Math.max(...Object.values(sizes).map((s) => s.max)));
});

test('every request has a fixture, and each fixture payload size is allowed by the spec', (t) => {
  const covered = new Set(FIXTURES.map((f) => f.expected.request));
  t.deepEqual([...covered].sort((a, b) => a - b), spec.requests.map((r) => r.code));
  for (const fixture of FIXTURES) {
    const kind = spec.payloadKinds[spec.requests[fixture.expected.request - 1]!.payload]!;
    const size = fixture.msg.length - spec.headerSize;
    t.true(size >= kind.min && size <= kind.max, `${fixture.title}: ${size} bytes`);
  }
});

test('catalogEntry looks up by raw code', (t) => {
  t.is(catalogEntry(9)?.name, 'SET_VRING_ADDR');
  t.is(catalogEntry(0), undefined);
  t.is(catalogEntry(44), undefined);
});
