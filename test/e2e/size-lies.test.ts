/**
 * Lies about sizes, end to end: a front-end declares regions larger than the memfd behind them (or
 * offsets past its end). Mapping them and touching the missing part would raise SIGBUS and kill the
 * process; the back-end fstat()s the fd first and refuses. Each lie gets a failure REPLY_ACK, the
 * process lives, and the same connection then negotiates honestly and moves a frame.
 */
import test from 'ava';
import * as native from '../../src/native.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import type { MemoryRegion } from '../../src/protocol/payloads.ts';
import { TestFrontend, USER_BASE } from '../helpers/test-frontend.ts';
import { startInProcessBackend } from '../helpers/backend-harness.ts';
import { createTap } from '../helpers/netns.ts';
import { openFdCountAtRest, openFdCountSettled } from '../helpers/open-fds.ts';

const PAGE = 4096n;
const FILE_BYTES = 4n * PAGE;

/** Declared regions that do not fit a memfd of FILE_BYTES. */
const LIES: [string, MemoryRegion][] = [
  ['one page longer than the file', { guestPhysAddr: 0n, memorySize: FILE_BYTES + PAGE, userspaceAddr: USER_BASE, mmapOffset: 0n }],
  ['a whole guest RAM on a 16 KiB file', { guestPhysAddr: 0n, memorySize: 1n << 30n, userspaceAddr: USER_BASE, mmapOffset: 0n }],
  ['the right size at an offset past the end', { guestPhysAddr: 0n, memorySize: FILE_BYTES, userspaceAddr: USER_BASE, mmapOffset: PAGE }],
  ['offset + size wrapping around 2^64', { guestPhysAddr: 0n, memorySize: 2n * PAGE, userspaceAddr: USER_BASE, mmapOffset: (1n << 64n) - PAGE }],
];

test.serial('a region larger than its memfd is refused with a failure ack; the connection then works', async (t) => {
  const tap = await createTap(t);
  const backend = startInProcessBackend(t, tap);
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  const protocol = await fe.get({ request: R.GET_PROTOCOL_FEATURES });
  await fe.request({ request: R.SET_PROTOCOL_FEATURES, features: protocol });
  const fdsBefore = await openFdCountAtRest();
  for (const [what, region] of LIES) {
    const short = native.memfdCreate('vu-short-guest', Number(FILE_BYTES));
    const status = await fe.acked({ request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: [region] } }, [short]);
    t.is(status, 1n, `SET_MEM_TABLE: ${what}`);
    const added = await fe.acked({ request: R.ADD_MEM_REG, memReg: { padding: 0n, region } }, [short]);
    t.is(added, 1n, `ADD_MEM_REG: ${what}`);
    native.closeFd(short);
  }
  t.is(await openFdCountSettled(fdsBefore), fdsBefore, 'the fds of refused regions are closed');
  t.true(backend.logLines.some((l) => /VU_ERR_GUEST_MEMORY/.test(l) && /file/.test(l)), 'the refusal names the file size');
  // Same connection, honest this time: negotiated, and a frame goes out on the TAP.
  await fe.negotiate();
  const hdr = fe.alloc(12);
  fe.bytes(hdr, 12).fill(0);
  const frame = fe.alloc(60);
  fe.bytes(frame, 60).fill(0xff, 0, 6);
  fe.rings[1].addDescChain([{ addr: hdr, len: 12 }, { addr: frame, len: 60 }]);
  fe.kick(1);
  t.true(await fe.waitCall(1), 'TX completion signalled');
  t.deepEqual(backend.events.filter((e) => e.kind === 'fault'), []);
});
