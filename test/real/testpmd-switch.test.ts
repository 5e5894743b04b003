/**
 * Two DPDK testpmd `net_virtio_user` front-ends on one switch socket: each becomes a port of the
 * segment. One runs `txonly` toward the other's MAC (unknown to the switch, since `rxonly` never
 * sends: flooded, and the receiver is the only other port), the other `rxonly`.
 *
 * Accounting, all from counters: every frame the switch took from the sender reached the
 * receiver's port either delivered (`rxFrames`) or dropped because its RX ring had no buffer
 * (`drops.noBuffer`) or was not ready (`drops.notReady`); what testpmd counted as sent exceeds
 * that only by what was still on its TX ring when it stopped; what `rxonly` counted is what the
 * switch delivered.
 *
 * With split rings on both sides, and with packed rings (`packed_vq=1`) on either side: a frame
 * then goes from one ring layout straight into the other.
 *
 * Serial: each testpmd busy-polls one CPU and this machine has two (the sender forwards on CPU 1,
 * the receiver on CPU 0, the switch's worker shares them).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { ensureHugepages } from '../helpers/hugepages.ts';
import { ensureDpdk, startTestpmd, virtioUserVdev } from '../helpers/testpmd.ts';
import { uniqueName } from '../helpers/netns.ts';
import { ctlPorts, startSwitch, type CtlPort } from '../helpers/switch-process.ts';
import { STOPPED_OR_PANICKED } from '../helpers/backend-process.ts';

/** Frames testpmd may count as sent that were still on its TX ring when it stopped (4 × queue size). */
const IN_FLIGHT_TOLERANCE = 1024;
/** The traffic phase ends once the receiver counted this many frames (or after TRAFFIC_MAX_MS). */
const TARGET_FRAMES = 50_000;
const TRAFFIC_MAX_MS = 5_000;
const SENDER_MAC = '02:00:00:00:01:01';
const RECEIVER_MAC = '02:00:00:00:01:02';

test.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the testpmd tests need root (hugepages)');
  await ensureDpdk();
  await ensureHugepages(512);
});

const count = (value: string | undefined) => Number(value ?? 0);
/** Everything the switch forwarded to a port: delivered, or dropped at the port. */
const offered = (port: CtlPort) => count(port.rxFrames) + count(port.drops.noBuffer) + count(port.drops.notReady);

const layouts = [
  { sender: 'split', receiver: 'split' },
  { sender: 'packed', receiver: 'split' },
  { sender: 'split', receiver: 'packed' },
] as const;

for (const layout of layouts) {
  test.serial(`testpmd txonly (${layout.sender} rings) → switch → testpmd rxonly (${layout.receiver} rings): every frame delivered or counted as dropped`, async (t) => {
    t.timeout(60_000);
    const sw = await startSwitch(t, ['--dhcp', 'off']);

    // The receiver connects first (port guest1), so nothing is sent before it is there.
    const receiver = await startTestpmd({
      prefix: uniqueName('swr'),
      lcores: '0,1',
      mainLcore: 1, // forwards on CPU 0
      vdevs: [virtioUserVdev({ path: sw.socketPath, mac: RECEIVER_MAC, packedVq: layout.receiver === 'packed' })],
      fwdMode: 'rxonly',
      teardown: t,
    });
    await receiver.ready();
    await receiver.waitForLinkUp(0);
    const sender = await startTestpmd({
      prefix: uniqueName('swt'),
      lcores: '0,1',
      mainLcore: 0, // forwards on CPU 1
      vdevs: [virtioUserVdev({ path: sw.socketPath, mac: SENDER_MAC, packedVq: layout.sender === 'packed' })],
      fwdMode: 'txonly',
      txpkts: [64],
      extraArgs: [`--eth-peer=0,${RECEIVER_MAC}`],
      teardown: t,
    });
    await sender.ready();
    await sender.waitForLinkUp(0);

    await receiver.waitForStats((ports) => ports[0]?.rxPackets > 0, 'rxPackets > 0', 15_000);
    await receiver.waitForStats((ports) => ports[0]?.rxPackets >= TARGET_FRAMES, `rxPackets >= ${TARGET_FRAMES}`, TRAFFIC_MAX_MS).catch(() => undefined);
    const during = await ctlPorts(sw);
    t.deepEqual(during.map((p) => `${p.name}:${p.kind}`).sort(), ['guest1:vhost-user', 'guest2:vhost-user'], 'each front-end is a port');

    const sent = (await sender.stop()).ports[0];
    // The sender's port goes away with its connection; then the receiver's counters stop moving.
    let receiverPort: CtlPort | undefined;
    const deadline = Date.now() + 10_000;
    for (let previous = -1; Date.now() < deadline; ) {
      const ports = await ctlPorts(sw);
      receiverPort = ports.find((p) => p.name === 'guest1');
      if (!ports.some((p) => p.name === 'guest2') && receiverPort && offered(receiverPort) === previous) break;
      previous = receiverPort ? offered(receiverPort) : -1;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    t.truthy(receiverPort, 'the receiver is still a port');
    const received = (await receiver.stop()).ports[0];
    const port = receiverPort!;
    const delivered = count(port.rxFrames);
    const noBuffer = count(port.drops.noBuffer);
    const notReady = count(port.drops.notReady);
    t.log(
      `testpmd txonly sent ${sent.txPackets} (tx dropped ${sent.txDropped}); switch → receiver port: delivered ${delivered}, ` +
        `dropped no-buffer ${noBuffer}, not-ready ${notReady}; testpmd rxonly received ${received.rxPackets} (${received.rxBytes} bytes)`,
    );
    t.true(sent.txPackets > 0, 'testpmd sent nothing');
    t.true(delivered > 0, 'nothing was delivered');
    t.true(offered(port) <= sent.txPackets, `the switch forwarded ${offered(port)} > ${sent.txPackets} sent`);
    t.true(sent.txPackets - offered(port) <= IN_FLIGHT_TOLERANCE, `sent ${sent.txPackets}, forwarded ${offered(port)}: ${sent.txPackets - offered(port)} unaccounted`);
    t.is(received.rxPackets, delivered, 'rxonly counted exactly what the switch delivered');
    // NIC byte counters come from testpmd's last periodic print: they may lag, but only by whole frames.
    t.true(received.rxBytes > 0 && received.rxBytes % 64 === 0 && received.rxBytes <= delivered * 64, `rxBytes ${received.rxBytes}: 64-byte frames, lengths preserved`);
    const log = readFileSync(sw.process.logPath, 'utf8');
    t.is([...log.matchAll(/features negotiated features=.*VIRTIO_F_RING_PACKED/g)].length, [layout.sender, layout.receiver].filter((l) => l === 'packed').length, 'packed rings where asked for');
    t.notRegex(log, STOPPED_OR_PANICKED);
  });
}
