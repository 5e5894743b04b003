/**
 * The named limits (docs/limits.md), end to end against the real back-end: each violation gets the
 * documented outcome and error code, and the process carries on.
 */
import test, { type ExecutionContext } from 'ava';
import * as native from '../../src/native.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { encodeHeader } from '../../src/protocol/header.ts';
import { MAX_MEM_SLOTS, MAX_MESSAGE_PAYLOAD, MAX_QUEUE_SIZE } from '../../src/device/limits.ts';
import { TestFrontend, USER_BASE } from '../helpers/test-frontend.ts';
import { startInProcessBackend } from '../helpers/backend-harness.ts';
import { createTap } from '../helpers/netns.ts';

const PAGE = 4096;

async function setUp(t: ExecutionContext) {
  const backend = startInProcessBackend(t, await createTap(t));
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  await fe.request({ request: R.SET_PROTOCOL_FEATURES, features: await fe.get({ request: R.GET_PROTOCOL_FEATURES }) });
  return { backend, fe };
}

test.serial(`regions: ${MAX_MEM_SLOTS} are mapped, one more is refused with VU_ERR_GUEST_MEMORY`, async (t) => {
  const { backend, fe } = await setUp(t);
  t.is(await fe.get({ request: R.GET_MAX_MEM_SLOTS }), BigInt(MAX_MEM_SLOTS));
  const memfd = native.memfdCreate('vu-limits-guest', (MAX_MEM_SLOTS + 1) * PAGE);
  t.teardown(() => native.closeFd(memfd));
  const region = (i: number) => ({ guestPhysAddr: BigInt(i * PAGE), memorySize: BigInt(PAGE), userspaceAddr: USER_BASE + BigInt(i * PAGE), mmapOffset: BigInt(i * PAGE) });
  for (let i = 0; i < MAX_MEM_SLOTS; i++) {
    const status = await fe.acked({ request: R.ADD_MEM_REG, memReg: { padding: 0n, region: region(i) } }, [memfd]);
    if (status !== 0n) return t.fail(`region ${i} refused`);
  }
  t.is(await fe.acked({ request: R.ADD_MEM_REG, memReg: { padding: 0n, region: region(MAX_MEM_SLOTS) } }, [memfd]), 1n);
  t.true(backend.logLines.some((l) => l.includes('VU_ERR_GUEST_MEMORY') && l.includes(`at most ${MAX_MEM_SLOTS}`)));
  // Removing one makes room again.
  await fe.expectAck({ request: R.REM_MEM_REG, memReg: { padding: 0n, region: region(0) } });
  await fe.expectAck({ request: R.ADD_MEM_REG, memReg: { padding: 0n, region: region(MAX_MEM_SLOTS) } }, [memfd]);
});

test.serial(`queue size: a power of two up to ${MAX_QUEUE_SIZE}; anything else fails with VU_ERR_BAD_VALUE`, async (t) => {
  const { backend, fe } = await setUp(t);
  await fe.expectAck({ request: R.SET_VRING_NUM, state: { index: 0, num: MAX_QUEUE_SIZE } });
  for (const num of [0, 3, MAX_QUEUE_SIZE * 2, 0xffff_ffff]) {
    t.is(await fe.acked({ request: R.SET_VRING_NUM, state: { index: 0, num } }), 1n, `size ${num}`);
  }
  t.is(backend.logLines.filter((l) => l.includes('request=SET_VRING_NUM code=VU_ERR_BAD_VALUE')).length, 4);
});

test.serial(`message size: a header announcing more than ${MAX_MESSAGE_PAYLOAD} bytes closes the connection (VU_ERR_MSG_TOO_LARGE)`, async (t) => {
  const { backend, fe } = await setUp(t);
  fe.sendRaw(encodeHeader({ request: R.SET_MEM_TABLE, flags: 1, size: MAX_MESSAGE_PAYLOAD + 1 }));
  await fe.closed;
  t.true(backend.logLines.some((l) => l.includes('front-end disconnected') && l.includes(`${MAX_MESSAGE_PAYLOAD + 1}`)));
  // The next front-end is served.
  const next = TestFrontend.connect(backend.socketPath);
  t.teardown(() => next.close());
  t.is(typeof (await next.get({ request: R.GET_FEATURES })), 'bigint');
});
