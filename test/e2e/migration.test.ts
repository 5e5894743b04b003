/**
 * In-process end-to-end for live migration, with the test front-end playing QEMU's part:
 * the dirty-page log (SET_LOG_BASE, VHOST_F_LOG_ALL, VHOST_VRING_F_LOG) marks the pages the
 * back-end wrote in the shared bitmap — and only while LOG_ALL is set, for two migrations in a
 * row with the same log — and SEND_RARP announces the guest out of its TAP.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { VirtioFeature as F } from '../../src/protocol/virtio-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { decodeReply } from '../../src/protocol/decode-reply.ts';
import { TestFrontend, USER_BASE } from '../helpers/test-frontend.ts';
import { MiniGuest } from '../helpers/mini-guest.ts';
import { GUEST_MAC, withBackendAndNamespace } from '../helpers/backend-harness.ts';
import { arpRequest, isArpReply } from '../helpers/frames.ts';
import * as native from '../../src/native.ts';

const RX = 0;
const TX = 1;
const LOG_PAGE = 4096;
const VHOST_VRING_F_LOG = 0;

/** SET_VRING_ADDR for `index` with the used ring logged at its guest-physical address (or not). */
async function setRingLogging(fe: TestFrontend, index: number, log: boolean): Promise<void> {
  const l = fe.rings[index].layout;
  await fe.expectAck({
    request: R.SET_VRING_ADDR,
    addr: {
      index,
      flags: log ? 1 << VHOST_VRING_F_LOG : 0,
      descUserAddr: USER_BASE + BigInt(l.descAddr),
      availUserAddr: USER_BASE + BigInt(l.availAddr),
      usedUserAddr: USER_BASE + BigInt(l.usedAddr),
      logGuestAddr: log ? BigInt(l.usedAddr) : 0n,
    },
  });
}

/** Pages whose bit is set (little-endian host: byte p/8, bit p%8 of the u64-word bitmap); clears the log. */
function collectDirtyPages(log: Uint8Array): number[] {
  const pages: number[] = [];
  log.forEach((byte, i) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) pages.push(i * 8 + bit);
  });
  log.fill(0);
  return pages;
}

test.serial('with LOG_ALL the RX buffer and both used rings are marked in the shared log; nothing without; again for a second migration', async (t) => {
  const { backend, subnet } = await withBackendAndNamespace(t);
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  const features = await fe.negotiate();
  const guest = new MiniGuest(fe, 2048);
  guest.postRxBuffers(64);
  guest.send(arpRequest(GUEST_MAC, subnet.guestIp, subnet.hostIp));
  await guest.receive((f) => isArpReply(f, subnet.hostIp));

  const logBytes = fe.options.memoryBytes / LOG_PAGE / 8;
  const logFd = native.memfdCreate('vu-test-log', logBytes);
  const log = new Uint8Array(native.mapShared(logFd, 0, logBytes));
  const reply = await fe.request({ request: R.SET_LOG_BASE, log: { mmapSize: BigInt(logBytes), mmapOffset: 0n } }, [logFd]);
  native.closeFd(logFd);
  t.is(decodeReply(reply!, R.SET_LOG_BASE), 0n);

  const usedPage = (index: number) => Math.floor(fe.rings[index].layout.usedAddr / LOG_PAGE);
  /** One ARP round trip; returns the pages of the RX buffer the reply landed in. */
  const roundTrip = async (): Promise<number[]> => {
    const usedBefore = fe.rings[RX].usedIdx();
    guest.send(arpRequest(GUEST_MAC, subnet.guestIp, subnet.hostIp));
    await guest.receive((f) => isArpReply(f, subnet.hostIp));
    t.true(fe.rings[RX].usedIdx() > usedBefore);
    await sleep(20);
    return [...guest.rxBufferAt.values()].map((addr) => Math.floor(addr / LOG_PAGE));
  };

  for (const migration of [1, 2]) {
    await fe.expectAck({ request: R.SET_FEATURES, features: features | featureMask(F.VHOST_F_LOG_ALL) });
    for (const index of [RX, TX]) await setRingLogging(fe, index, true);
    collectDirtyPages(log);
    const rxPages = await roundTrip();
    const dirty = collectDirtyPages(log);
    t.true(dirty.includes(usedPage(RX)) && dirty.includes(usedPage(TX)), `migration ${migration}: used rings marked`);
    const bufferPages = dirty.filter((p) => p !== usedPage(RX) && p !== usedPage(TX));
    t.true(bufferPages.length >= 1, `migration ${migration}: the RX buffer page is marked`);
    t.true(bufferPages.every((p) => rxPages.includes(p)), `migration ${migration}: only pages the back-end wrote: ${dirty}`);

    await fe.expectAck({ request: R.SET_FEATURES, features });
    for (const index of [RX, TX]) await setRingLogging(fe, index, false);
    await roundTrip();
    t.deepEqual(collectDirtyPages(log), [], `after migration ${migration}: logging is off`);
  }
  t.deepEqual(backend.events.filter((e) => e.kind === 'fault'), []);
});

test.serial('SEND_RARP broadcasts a RARP reverse request from the given MAC out of the TAP', async (t) => {
  const { backend, ns, tap } = await withBackendAndNamespace(t);
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  await fe.negotiate();
  // An AF_PACKET listener for the RARP ethertype on the TAP's host end.
  const listener = await ns.spawn(
    'python3',
    [
      '-c',
      [
        'import socket, select, sys',
        's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))',
        's.bind((sys.argv[1], 0x8035))',
        'print("ready", flush=True)',
        'r, _, _ = select.select([s], [], [], 10)',
        'print("frame " + (s.recv(2048).hex() if r else "none"), flush=True)',
      ].join('\n'),
      tap,
    ],
    'rarp-listener',
    t,
  );
  await listener.waitForOutput(/ready/, 5000);
  const mac = Uint8Array.of(0x52, 0x54, 0x00, 0xab, 0xcd, 0xef);
  await fe.expectAck({ request: R.SEND_RARP, mac });
  const output = await listener.waitForOutput(/frame \w+/, 10_000);
  const hex = /frame (\w+)/.exec(output)![1];
  t.not(hex, 'none', 'a RARP frame arrived on the TAP');
  const macHex = Buffer.from(mac).toString('hex');
  t.is(hex.slice(0, 12), 'ffffffffffff', 'broadcast');
  t.is(hex.slice(12, 24), macHex, 'from the guest MAC');
  t.is(hex.slice(24, 44), '80350001080006040003', 'RARP, Ethernet/IPv4, reverse request');
  t.is(hex.slice(44, 56), macHex, 'sender hardware address');
  t.is(hex.slice(64, 76), macHex, 'target hardware address');
  t.is(hex.length, 120, '60 bytes');
});
