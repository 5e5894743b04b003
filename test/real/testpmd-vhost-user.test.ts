/**
 * DPDK testpmd's `net_virtio_user` as a second, independent front-end of our back-end (the first
 * is QEMU, qemu-vhost-user.test.ts): frames go both ways between testpmd and the TAP, whose host
 * end lives in a fresh network namespace.
 *
 * One body for each feature variant. Each variant connects two testpmd processes one after the
 * other to the same back-end process, so every variant also proves a clean reconnect:
 *  - TX: testpmd `txonly` → virtio TX ring → back-end → TAP; the kernel counts the frames as RX
 *    on the TAP's host end.
 *  - RX: frames injected on the TAP's host end → back-end → virtio RX ring → testpmd `rxonly`.
 *
 * Split and packed rings: we offer VIRTIO_F_RING_PACKED; DPDK's virtio PMD always requests it, and
 * `packed_vq=1` lets virtio_user pass our offer through, so testpmd then runs packed rings.
 *
 * Serial: testpmd busy-polls one CPU and this machine has two.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { ensureHugepages } from '../helpers/hugepages.ts';
import { ensureDpdk, startTestpmd, virtioUserVdev, type Testpmd } from '../helpers/testpmd.ts';
import { readIfStats, sendFrames, waitForIfStats } from '../helpers/rawframes.ts';
import { createTap, NetNs, uniqueName } from '../helpers/netns.ts';
import { negotiatedFeatureNames, startBackendProcess, STOPPED_OR_PANICKED, type BackendProcess } from '../helpers/backend-process.ts';
import { VirtioFeature, describeFeatures, hasFeature } from '../../src/protocol/index.ts';

/** Frames testpmd may count as sent that were still in the TX ring when it stopped (4 × queue size). */
const IN_FLIGHT_TOLERANCE = 1024;
/** The TX phase stops once this many frames reached the TAP (or after TX_PHASE_MAX_MS). */
const TX_TARGET_FRAMES = 20_000;
const TX_PHASE_MAX_MS = 5_000;
/** RX: small frames, and full-size ones (one whole RX buffer each, or a merged chain). */
const RX_FRAMES = [
  { count: 100, frameSize: 64 },
  { count: 100, frameSize: 1514 },
];

test.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the testpmd tests need root (hugepages, TAP devices, network namespaces)');
  await ensureDpdk();
  await ensureHugepages(512);
});

interface Variant {
  mrgRxbuf: boolean;
  /** Packed rings (virtio_user passes our RING_PACKED offer on). */
  packedVq: boolean;
  /** virtio_user's in_order (its default): the virtio PMD's in-order paths, which take every used
   * element to be the next descriptor made available, without looking at its id. */
  inOrder: boolean;
}

const variants: Variant[] = [
  { mrgRxbuf: true, packedVq: false, inOrder: true },
  { mrgRxbuf: false, packedVq: false, inOrder: true },
  { mrgRxbuf: true, packedVq: true, inOrder: true },
  { mrgRxbuf: false, packedVq: true, inOrder: true },
  { mrgRxbuf: true, packedVq: false, inOrder: false },
];

function backendLog(backend: BackendProcess): string {
  return readFileSync(backend.process.logPath, 'utf8');
}

/** Starts one net_virtio_user testpmd on the back-end's socket and waits for its link. */
async function connectTestpmd(t: ExecutionContext, backend: BackendProcess, variant: Variant, fwdMode: 'txonly' | 'rxonly'): Promise<Testpmd> {
  const testpmd = await startTestpmd({
    prefix: uniqueName('pv'),
    lcores: '0,1',
    mainLcore: 0, // forwards on CPU 1
    vdevs: [virtioUserVdev({ path: backend.socketPath, mrgRxbuf: variant.mrgRxbuf, packedVq: variant.packedVq, inOrder: variant.inOrder })],
    fwdMode,
    ...(fwdMode === 'txonly' ? { txpkts: [64] } : {}),
    teardown: t,
  });
  await testpmd.ready();
  await testpmd.waitForLinkUp(0);
  return testpmd;
}

/** Checks what testpmd and our back-end both say was negotiated on the latest connection. */
function checkFeatures(t: ExecutionContext, variant: Variant, testpmd: Testpmd, backend: BackendProcess, phase: string): string[] {
  const names = negotiatedFeatureNames(backendLog(backend));
  t.true(names.length > 0, `${phase}: back-end logged no "features negotiated" line`);
  t.true(names.includes('VIRTIO_F_VERSION_1'), `${phase}: VERSION_1`);
  t.is(names.includes('VIRTIO_NET_F_MRG_RXBUF'), variant.mrgRxbuf, `${phase}: MRG_RXBUF`);
  t.is(names.includes('VIRTIO_F_RING_PACKED'), variant.packedVq, `${phase}: RING_PACKED`);
  t.is(names.includes('VIRTIO_F_IN_ORDER'), variant.inOrder, `${phase}: IN_ORDER`);
  const { offered, requested, sent } = testpmd.negotiatedFeatures();
  t.not(sent, undefined, `${phase}: virtio_user logged no "set features" line`);
  t.log(`${phase}: virtio_user requested 0x${requested?.toString(16)}, device features (back-end's, filtered by virtio_user's options) 0x${offered?.toString(16)}, set 0x${sent?.toString(16)}`);
  // The virtio PMD always requests RING_PACKED; packed_vq decides whether virtio_user passes our
  // RING_PACKED offer through.
  t.true(hasFeature(requested ?? 0n, VirtioFeature.VIRTIO_F_RING_PACKED), `${phase}: the virtio PMD requests RING_PACKED`);
  t.is(hasFeature(offered ?? 0n, VirtioFeature.VIRTIO_F_RING_PACKED), variant.packedVq, `${phase}: RING_PACKED reached the driver as offered`);
  // virtio_user logs its features before its vhost-user layer adds VHOST_USER_F_PROTOCOL_FEATURES.
  const front = describeFeatures(sent ?? 0n, VirtioFeature);
  const virtio = names.filter((name) => name !== 'VHOST_USER_F_PROTOCOL_FEATURES');
  t.deepEqual([...front].sort(), virtio.sort(), `${phase}: virtio_user's SET_FEATURES and the back-end's log agree`);
  t.is(hasFeature(sent ?? 0n, VirtioFeature.VIRTIO_F_RING_PACKED), variant.packedVq, `${phase}: virtio_user runs ${variant.packedVq ? 'packed' : 'split'} rings`);
  return names;
}

for (const variant of variants) {
  const title = `net_virtio_user ⇄ our back-end ⇄ TAP: mrg_rxbuf=${+variant.mrgRxbuf} packed_vq=${+variant.packedVq} in_order=${+variant.inOrder}`;
  test.serial(title, async (t) => {
    t.timeout(60_000);
    const tap = await createTap(t);
    const backend = await startBackendProcess(t, uniqueName('bp'), ['--tap', tap]);
    const ns = await NetNs.create(t);
    await ns.moveLink(tap);
    // No IPv6 and no address: the kernel sends nothing of its own out of the TAP, so the RX count is exact.
    await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']).then((r) => t.is(r.code, 0, r.stderr));
    await ns.exec('sysctl', ['-qw', `net.ipv6.conf.${tap}.disable_ipv6=1`]).then((r) => t.is(r.code, 0, r.stderr));
    await ns.exec('ip', ['link', 'set', tap, 'up']).then((r) => t.is(r.code, 0, r.stderr));

    // TX: testpmd txonly → back-end → TAP.
    const tapBefore = await readIfStats(tap, ns.name);
    const sender = await connectTestpmd(t, backend, variant, 'txonly');
    const txFeatures = checkFeatures(t, variant, sender, backend, 'txonly');
    t.log(`txonly connection: negotiated ${txFeatures.join(' ')}`);
    await sender.waitForStats((ports) => ports[0]?.txPackets > 0, 'txPackets > 0');
    await waitForIfStats(tap, (s) => s.rxPackets - tapBefore.rxPackets >= TX_TARGET_FRAMES, { netns: ns.name, timeoutMs: TX_PHASE_MAX_MS }).catch(() => undefined);
    const sent = (await sender.stop()).ports[0];
    // Settle: the back-end writes what it had already taken off the ring.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const tapAfterTx = await readIfStats(tap, ns.name);
    const arrived = tapAfterTx.rxPackets - tapBefore.rxPackets;
    t.log(`TX: testpmd sent ${sent.txPackets} (tx dropped ${sent.txDropped}), TAP received ${arrived} (rx dropped +${tapAfterTx.rxDropped - tapBefore.rxDropped})`);
    t.true(sent.txPackets > 0, 'testpmd sent nothing');
    t.true(arrived > 0, 'nothing arrived on the TAP');
    t.true(arrived <= sent.txPackets, `TAP received ${arrived} > ${sent.txPackets} sent`);
    t.true(sent.txPackets - arrived <= IN_FLIGHT_TOLERANCE, `lost ${sent.txPackets - arrived} of ${sent.txPackets} frames`);

    // RX: TAP → back-end → testpmd rxonly, on a second connection to the same back-end.
    const negotiations = () => [...backendLog(backend).matchAll(/ features negotiated features=/g)].length;
    const negotiationsBefore = negotiations();
    const receiver = await connectTestpmd(t, backend, variant, 'rxonly');
    t.is(negotiations(), negotiationsBefore + 1, 'the second front-end negotiated afresh');
    const rxFeatures = checkFeatures(t, variant, receiver, backend, 'rxonly');
    t.log(`rxonly connection: negotiated ${rxFeatures.join(' ')}`);
    const total = RX_FRAMES.reduce((sum, f) => sum + f.count, 0);
    for (const { count, frameSize } of RX_FRAMES) {
      t.is(await sendFrames({ ifname: tap, netns: ns.name, count, frameSize }), count);
    }
    const tapAfterRx = await readIfStats(tap, ns.name);
    await receiver.waitForStats((ports) => ports[0]?.rxPackets >= total, `rxPackets >= ${total}`, 15_000).catch(() => undefined);
    const received = (await receiver.stop()).ports[0];
    t.log(
      `RX: injected ${total} (TAP tx +${tapAfterRx.txPackets - tapAfterTx.txPackets}, tx dropped +${tapAfterRx.txDropped - tapAfterTx.txDropped}), ` +
        `testpmd received ${received.rxPackets} (${received.rxBytes} bytes, rx missed ${received.rxMissed}, nombuf ${received.rxNombuf})`,
    );
    t.is(received.rxPackets, total, 'every injected frame reached testpmd');
    const expectedBytes = RX_FRAMES.reduce((sum, f) => sum + f.count * f.frameSize, 0);
    t.is(received.rxBytes, expectedBytes, 'frame lengths are preserved');

    t.notRegex(backendLog(backend), STOPPED_OR_PANICKED);
  });
}
