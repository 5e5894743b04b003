import test from 'ava';

import { CATALOG, FrontendRequest as R, ProtocolError, decodeRequest, type VhostUserErrorCode } from '../../src/protocol/index.ts';
import { concat, message, u32le, u64le, zeros } from './bytes.ts';
import { FIXTURES } from './fixtures.ts';

/** Run `fn`, require a ProtocolError with `code`; anything else (value, other error type) fails. */
function throwsCode(t: import('ava').ExecutionContext, fn: () => unknown, code: VhostUserErrorCode, what: string): void {
  try {
    const value = fn();
    t.fail(`${what}: decoded to ${JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v))} instead of ${code}`);
  } catch (error) {
    if (!(error instanceof ProtocolError)) {
      t.fail(`${what}: threw ${String(error)} instead of ProtocolError ${code}`);
      return;
    }
    t.is(error.code, code, `${what}: ${error.message}`);
  }
}

for (const fixture of FIXTURES) {
  test(`decodes ${fixture.title}`, (t) => {
    t.deepEqual(decodeRequest(fixture.msg, fixture.fds), fixture.expected);
  });

  test(`${fixture.title}: every truncation is a ProtocolError`, (t) => {
    for (let length = 0; length < fixture.msg.length; length++) {
      const prefix = fixture.msg.slice(0, length);
      throwsCode(t, () => decodeRequest(prefix, fixture.fds), length < 12 ? 'VU_ERR_BAD_HEADER' : 'VU_ERR_BAD_SIZE', `cut at ${length}`);
    }
  });

  test(`${fixture.title}: a trailing byte the header does not count is rejected`, (t) => {
    throwsCode(t, () => decodeRequest(concat(fixture.msg, Uint8Array.of(0)), fixture.fds), 'VU_ERR_BAD_SIZE', 'extra byte');
  });

  test(`${fixture.title}: only the catalog's fd counts are accepted`, (t) => {
    const entry = CATALOG.get(fixture.expected.request)!;
    for (let fds = 0; fds <= 9; fds++) {
      const allowed = entry.fds === 'optional' ? fds <= 1 : fds === fixture.fds;
      if (allowed) t.notThrows(() => decodeRequest(fixture.msg, fds), `${fds} fds`);
      else throwsCode(t, () => decodeRequest(fixture.msg, fds), 'VU_ERR_BAD_FDS', `${fds} fds`);
    }
  });
}

for (const fixture of FIXTURES) {
  const kind = CATALOG.get(fixture.expected.request)!.payload;
  if (kind === 'ConfigSpace' || kind === 'CryptoSession') continue; // these allow longer payloads
  test(`${fixture.title}: a payload 8 bytes too long (header agreeing) is rejected`, (t) => {
    const payload = concat(fixture.msg.subarray(12), zeros(8));
    throwsCode(t, () => decodeRequest(message(fixture.expected.request, 1, payload), fixture.fds), 'VU_ERR_BAD_SIZE', 'long payload');
  });
}

test('unknown request codes are rejected', (t) => {
  for (const code of [0, 44, 45, 1000, 0xffff_ffff]) {
    throwsCode(t, () => decodeRequest(message(code, 1), 0), 'VU_ERR_UNKNOWN_REQUEST', `code ${code}`);
  }
  const error = t.throws(() => decodeRequest(message(44, 1), 0), { instanceOf: ProtocolError });
  t.is(error?.request, 'UNKNOWN(44)');
});

test('header version must be 1, undefined flag bits and REPLY are rejected', (t) => {
  for (const flags of [0x0, 0x2, 0x3, 0x1 | 0x10, 0x1 | 0x8000_0000, 0x1 | 0x4]) {
    throwsCode(t, () => decodeRequest(message(R.GET_FEATURES, flags), 0), 'VU_ERR_BAD_HEADER', `flags 0x${flags.toString(16)}`);
  }
});

test('payload size must match the request', (t) => {
  throwsCode(t, () => decodeRequest(message(R.SET_FEATURES, 1, u32le(1)), 0), 'VU_ERR_BAD_SIZE', 'u64 as 4 bytes');
  throwsCode(t, () => decodeRequest(message(R.GET_FEATURES, 1, u64le(0n)), 0), 'VU_ERR_BAD_SIZE', 'GET_FEATURES with payload');
  throwsCode(t, () => decodeRequest(message(R.SET_LOG_BASE, 1, u64le(0n)), 1), 'VU_ERR_BAD_SIZE', 'SET_LOG_BASE as u64');
  throwsCode(t, () => decodeRequest(message(R.GET_CONFIG, 1, u32le(0), u32le(8)), 0), 'VU_ERR_BAD_SIZE', 'config header cut');
  throwsCode(t, () => decodeRequest(message(R.SET_CONFIG, 1, u32le(0), u32le(8), u32le(0), zeros(257)), 0), 'VU_ERR_BAD_SIZE', 'config > 268 bytes');
  throwsCode(t, () => decodeRequest(message(R.CREATE_CRYPTO_SESSION, 1, zeros(4097)), 0), 'VU_ERR_BAD_SIZE', 'crypto > bound');
});

test('memory table: region count and payload size must agree, at most 8 regions', (t) => {
  const region = zeros(32);
  throwsCode(t, () => decodeRequest(message(R.SET_MEM_TABLE, 1, u32le(2), u32le(0), region), 2), 'VU_ERR_BAD_SIZE', '2 regions, 1 present');
  throwsCode(t, () => decodeRequest(message(R.SET_MEM_TABLE, 1, u32le(1), u32le(0), region, region), 1), 'VU_ERR_BAD_SIZE', '1 region, 2 present');
  throwsCode(t, () => decodeRequest(message(R.SET_MEM_TABLE, 1, u32le(9), u32le(0), region), 9), 'VU_ERR_BAD_PAYLOAD', '9 regions');
  throwsCode(t, () => decodeRequest(message(R.SET_MEM_TABLE, 1, u32le(0xffff_ffff), u32le(0)), 0), 'VU_ERR_BAD_PAYLOAD', '2^32-1 regions');
  throwsCode(t, () => decodeRequest(message(R.SET_MEM_TABLE, 1, u32le(1), u32le(0), region, zeros(8)), 1), 'VU_ERR_BAD_SIZE', 'region + 8 stray bytes');
});

test('config space: size at most 256 and covered by the payload', (t) => {
  throwsCode(t, () => decodeRequest(message(R.SET_CONFIG, 1, u32le(0), u32le(257), u32le(0), zeros(256)), 0), 'VU_ERR_BAD_PAYLOAD', 'size 257');
  throwsCode(t, () => decodeRequest(message(R.SET_CONFIG, 1, u32le(0), u32le(20), u32le(0), zeros(10)), 0), 'VU_ERR_BAD_SIZE', 'size 20, 10 bytes');
  throwsCode(t, () => decodeRequest(message(R.GET_CONFIG, 1, u32le(0), u32le(0xffff_ffff), u32le(0), zeros(4)), 0), 'VU_ERR_BAD_PAYLOAD', 'size 2^32-1');
});

test('vring file u64: bits 9-63 are reserved', (t) => {
  for (const value of [0x200n, 0x1_0000_0000n, 0x8000_0000_0000_0000n]) {
    throwsCode(t, () => decodeRequest(message(R.SET_VRING_CALL, 1, u64le(value)), 1), 'VU_ERR_BAD_PAYLOAD', `0x${value.toString(16)}`);
  }
});

test('flags are reported raw and NEED_REPLY is decoded', (t) => {
  const request = decodeRequest(message(R.SET_OWNER, 0x9), 0);
  t.is(request.flags, 0x9);
  t.true(request.needReply);
});

test('the decoded payload does not alias the receive buffer', (t) => {
  const msg = message(R.SET_CONFIG, 1, u32le(0), u32le(2), u32le(0), Uint8Array.of(7, 8));
  const request = decodeRequest(msg, 0);
  msg.fill(0);
  t.deepEqual(request.request === R.SET_CONFIG && [...request.config.payload], [7, 8]);
});

test('random corruption of every fixture yields a Request or a ProtocolError, nothing else', (t) => {
  let seed = 0x1234_5678;
  const next = (): number => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed;
  };
  let decoded = 0;
  let rejected = 0;
  for (const fixture of FIXTURES) {
    for (let round = 0; round < 300; round++) {
      const msg = fixture.msg.slice();
      const flips = 1 + (next() % 3);
      for (let i = 0; i < flips; i++) msg[next() % msg.length] ^= 1 << (next() % 8);
      try {
        decodeRequest(msg, next() % 3);
        decoded++;
      } catch (error) {
        if (!(error instanceof ProtocolError)) t.fail(`${fixture.title}: ${String(error)}`);
        rejected++;
      }
    }
  }
  t.true(decoded > 0 && rejected > 0, `${decoded} decoded, ${rejected} rejected`);
});
