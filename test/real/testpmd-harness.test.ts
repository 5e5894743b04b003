/**
 * Proves the testpmd harness with DPDK on both sides of a vhost-user socket: testpmd A runs
 * DPDK's `net_vhost` back-end in rxonly, testpmd B runs `net_virtio_user` in txonly; what B
 * sends must arrive at A, for every ring layout / mergeable-buffer variant. Also proves the
 * host-side frame helpers against a `net_tap` port.
 *
 * Serial: each testpmd busy-polls one CPU and this machine has two.
 */
import test from 'ava';
import { rm } from 'node:fs/promises';
import { ensureHugepages } from '../helpers/hugepages.ts';
import {
  ensureDpdk,
  startTestpmd,
  TestpmdError,
  tapVdev,
  vhostVdev,
  virtioUserVdev,
  type Testpmd,
} from '../helpers/testpmd.ts';
import { readIfStats, sendFrames, waitForIfStats } from '../helpers/rawframes.ts';
import { uniqueName } from '../helpers/netns.ts';
import { VhostUserProtocolFeature, VirtioFeature, describeFeatures, hasFeature } from '../../src/protocol/index.ts';

/** Frames B may count as sent that were still in a ring when it stopped (4 × queue size per queue pair). */
const IN_FLIGHT_TOLERANCE_PER_QUEUE = 1024;

test.before(async () => {
  await ensureDpdk();
  await ensureHugepages(512);
});

interface Variant {
  mrgRxbuf: boolean;
  packedVq: boolean;
  /** true: virtio_user listens and net_vhost connects (client=1). */
  frontEndListens: boolean;
  queuePairs: number;
}

const variants: Variant[] = [
  { mrgRxbuf: false, packedVq: false, frontEndListens: false, queuePairs: 1 },
  { mrgRxbuf: true, packedVq: false, frontEndListens: false, queuePairs: 1 },
  { mrgRxbuf: false, packedVq: true, frontEndListens: false, queuePairs: 1 },
  { mrgRxbuf: true, packedVq: true, frontEndListens: false, queuePairs: 1 },
  { mrgRxbuf: true, packedVq: false, frontEndListens: true, queuePairs: 1 },
  { mrgRxbuf: true, packedVq: false, frontEndListens: false, queuePairs: 2 },
];

for (const variant of variants) {
  const title =
    `net_virtio_user txonly → net_vhost rxonly: mrg_rxbuf=${+variant.mrgRxbuf} packed_vq=${+variant.packedVq}` +
    (variant.frontEndListens ? ' (virtio_user server, vhost client)' : '') +
    (variant.queuePairs > 1 ? ` ${variant.queuePairs} queue pairs` : '');
  test.serial(title, async (t) => {
    const socketPath = `/tmp/${uniqueName('vs')}.sock`;
    t.teardown(() => rm(socketPath, { force: true }));
    const startBackEnd = async () => {
      const backEnd = await startTestpmd({
        prefix: uniqueName('pa'),
        lcores: '0,1',
        mainLcore: 0, // forwards on CPU 1
        vdevs: [vhostVdev({ iface: socketPath, queues: variant.queuePairs, client: variant.frontEndListens })],
        fwdMode: 'rxonly',
        rxq: variant.queuePairs,
        txq: variant.queuePairs,
        teardown: t,
      });
      await backEnd.ready();
      return backEnd;
    };
    const startFrontEnd = () =>
      startTestpmd({
        prefix: uniqueName('pb'),
        lcores: '0,1',
        mainLcore: 1, // forwards on CPU 0
        vdevs: [
          virtioUserVdev({ path: socketPath, queues: variant.queuePairs, mrgRxbuf: variant.mrgRxbuf, packedVq: variant.packedVq, server: variant.frontEndListens }),
        ],
        fwdMode: 'txonly',
        rxq: variant.queuePairs,
        txq: variant.queuePairs,
        txpkts: [64],
        teardown: t,
      });
    // The listening side must be up before the connecting side starts.
    let backEnd: Testpmd;
    let frontEnd: Testpmd;
    if (variant.frontEndListens) {
      frontEnd = await startFrontEnd();
      await frontEnd.waitForLog(/waiting for client connection/);
      backEnd = await startBackEnd();
    } else {
      backEnd = await startBackEnd();
      frontEnd = await startFrontEnd();
    }
    await frontEnd.ready();
    await backEnd.waitForLinkUp(0);
    await frontEnd.waitForLinkUp(0);

    // Live statistics: wait for the traffic to show in both periodic prints.
    await frontEnd.waitForStats((ports) => ports[0]?.txPackets > 0, 'txPackets > 0');
    await backEnd.waitForStats((ports) => ports[0]?.rxPackets > 0, 'rxPackets > 0');

    // Stop the sender first so that the receiver can drain the ring.
    const sent = (await frontEnd.stop()).ports[0];
    await new Promise((resolve) => setTimeout(resolve, 500));
    const received = (await backEnd.stop()).ports[0];
    t.log(`sent ${sent.txPackets} (tx dropped ${sent.txDropped}), received ${received.rxPackets} (rx missed ${received.rxMissed})`);

    t.true(sent.txPackets > 0);
    t.true(received.rxPackets > 0);
    t.true(received.rxPackets <= sent.txPackets, 'received more than was sent');
    t.true(sent.txPackets - received.rxPackets <= IN_FLIGHT_TOLERANCE_PER_QUEUE * variant.queuePairs, `lost ${sent.txPackets - received.rxPackets} frames`);

    const front = frontEnd.negotiatedFeatures();
    const back = backEnd.negotiatedFeatures(socketPath);
    t.log(`virtio_user offered 0x${front.offered?.toString(16)}, acked ${describeFeatures(front.acked ?? 0n, VirtioFeature).join(' ')}`);
    t.log(`net_vhost features ${describeFeatures(back.sent ?? 0n, VirtioFeature).join(' ')}`);
    t.log(`net_vhost protocol features ${describeFeatures(back.protocol ?? 0n, VhostUserProtocolFeature).join(' ')}`);
    for (const [side, features] of [['virtio_user', front.sent], ['net_vhost', back.sent]] as const) {
      t.not(features, undefined, `${side} logged no feature word`);
      t.true(hasFeature(features ?? 0n, VirtioFeature.VIRTIO_F_VERSION_1), `${side}: VERSION_1`);
      t.is(hasFeature(features ?? 0n, VirtioFeature.VIRTIO_NET_F_MRG_RXBUF), variant.mrgRxbuf, `${side}: MRG_RXBUF`);
      t.is(hasFeature(features ?? 0n, VirtioFeature.VIRTIO_F_RING_PACKED), variant.packedVq, `${side}: RING_PACKED`);
      t.is(hasFeature(features ?? 0n, VirtioFeature.VIRTIO_NET_F_MQ), variant.queuePairs > 1, `${side}: MQ`);
    }
    t.not(back.protocol, undefined);
    t.true(front.acked !== undefined && front.offered !== undefined && (front.acked & ~front.offered) === 0n, 'acked ⊆ offered');
  });
}

test.serial('host frames into a net_tap port are counted by testpmd (rxonly) and by the kernel', async (t) => {
  const tap = uniqueName('tp');
  const frames = 1000;
  const testpmd = await startTestpmd({ prefix: uniqueName('pt'), lcores: '0,1', vdevs: [tapVdev({ iface: tap })], fwdMode: 'rxonly', teardown: t });
  await testpmd.ready();
  await testpmd.waitForLinkUp(0);
  const before = await readIfStats(tap);
  t.is(await sendFrames({ ifname: tap, count: frames, frameSize: 128 }), frames);
  const after = await waitForIfStats(tap, (s) => s.txPackets - before.txPackets >= frames);
  await testpmd.waitForStats((ports) => ports[0]?.rxPackets >= frames, `rxPackets >= ${frames}`);
  const result = await testpmd.stop();
  t.log(`host tap tx +${after.txPackets - before.txPackets}, testpmd rx ${result.ports[0].rxPackets}`);
  // The kernel may add its own frames (IPv6 neighbour discovery) on a fresh interface.
  t.true(result.ports[0].rxPackets >= frames);
});

test.serial('testpmd txonly on a net_tap port is counted by the host kernel', async (t) => {
  const tap = uniqueName('tp');
  const testpmd = await startTestpmd({ prefix: uniqueName('pt'), lcores: '0,1', vdevs: [tapVdev({ iface: tap })], fwdMode: 'txonly', txpkts: [64], teardown: t });
  await testpmd.ready();
  const seen = await waitForIfStats(tap, (s) => s.rxPackets >= 1000);
  const result = await testpmd.stop();
  t.log(`testpmd tx ${result.ports[0].txPackets}, host tap rx ${seen.rxPackets}`);
  t.true(result.ports[0].txPackets >= seen.rxPackets);
});

test.serial('a vdev that fails to probe makes ready() reject with VU_TESTPMD_PROBE_FAILED', async (t) => {
  const testpmd = await startTestpmd({
    prefix: uniqueName('pf'),
    lcores: '0,1',
    vdevs: [virtioUserVdev({ path: `/tmp/${uniqueName('vs')}.absent.sock` })],
    fwdMode: 'io',
    teardown: t,
  });
  const error = await t.throwsAsync(testpmd.ready(), { instanceOf: TestpmdError });
  t.is(error?.code, 'VU_TESTPMD_PROBE_FAILED');
});
