/**
 * A guest that posts garbage descriptors is cut off; the other guests on the same switch keep
 * running. Two QEMU guests on the switch process run iperf3 between them; meanwhile a third
 * front-end on the same socket (the in-process test front-end, playing a hostile guest driver)
 * negotiates, sends one good frame, then writes a descriptor pointing outside its memory and
 * `avail.idx` far ahead on its TX ring, a descriptor loop on its RX ring, and kicks both.
 * The switch logs one 'guest broke a ring' line for that port, the port's counters stop, iperf3
 * completes without errors at a sane rate, and the switch still answers `ctl ports`.
 */
import test from 'ava';
import { guestMac, parseIperf3Json } from '../helpers/guest.ts';
import { addressOf, bootOnSwitch, ctlPorts, startSwitch, type CtlPort, type SwitchProcess } from '../helpers/switch-process.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { BROADCAST } from '../helpers/frames.ts';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../helpers/driver-ring.ts';

const RX = 0;
const TX = 1;
const HDR = 12;
const QUEUE_SIZE = 256;
const MEMORY_BYTES = 4 << 20;
const FRAME_BYTES = 64;
/** IEEE 802 "local experimental" EtherType: the guests' kernels drop it. */
const ETH_P_EXPERIMENTAL = 0x88b5;
const IPERF_SECONDS = 8;
/** Frames guest A must have sent through the switch before the garbage goes in (iperf3 is flowing). */
const FLOWING_FRAMES = 2000n;
const DEADLINE_MS = 20_000;
const BROKE_A_RING = /guest broke a ring/;

const mbps = (bps: number) => `${(bps / 1e6).toFixed(1)} Mbit/s`;

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root');
});

/** Polls `ctl ports` until `condition` holds on them; fails after `ms`. */
async function waitForPorts(sw: SwitchProcess, condition: (ports: CtlPort[]) => boolean, what: string, ms = DEADLINE_MS): Promise<CtlPort[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ports = await ctlPorts(sw);
    if (condition(ports)) return ports;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}; ports: ${JSON.stringify(ports)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const portNamed = (ports: CtlPort[], name: string) => ports.find((p) => p.name === name);
const counters = (p: CtlPort | undefined) => ({ rxFrames: p?.rxFrames, txFrames: p?.txFrames, rxBytes: p?.rxBytes, txBytes: p?.txBytes });

/** Puts one well-formed broadcast frame on the test front-end's TX ring and kicks. */
function sendGoodFrame(fe: TestFrontend): void {
  const hdr = fe.alloc(HDR);
  fe.bytes(hdr, HDR).fill(0);
  const frame = fe.alloc(FRAME_BYTES);
  const bytes = fe.bytes(frame, FRAME_BYTES);
  bytes.set(BROADCAST, 0);
  bytes.set([0x02, 0, 0, 0, 0x66, 0x01], 6);
  new DataView(fe.memory, frame, FRAME_BYTES).setUint16(12, ETH_P_EXPERIMENTAL);
  fe.rings[TX].addDescChain([{ addr: hdr, len: HDR }, { addr: frame, len: FRAME_BYTES }]);
  fe.kick(TX);
}

/**
 * What a hostile driver writes: on TX a descriptor 1 GiB past the end of guest memory, then
 * avail.idx far more than a queue size ahead; on RX a two-descriptor loop. Kicks both rings.
 */
function postGarbage(fe: TestFrontend): void {
  const tx = fe.rings[TX];
  const outside = MEMORY_BYTES + (1 << 30);
  tx.writeDesc(10, outside, 1514, 0, 0);
  tx.publish(10);
  tx.setAvailIdx(tx.usedIdx() + 10 * QUEUE_SIZE);
  const rx = fe.rings[RX];
  const buffer = fe.alloc(2048);
  rx.writeDesc(0, buffer, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
  rx.writeDesc(1, buffer + 1024, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
  rx.publish(0);
  fe.kick(TX);
  fe.kick(RX);
}

test.serial('a front-end posting garbage descriptors is cut off; iperf3 between two guests on the switch runs on', async (t) => {
  const sw = await startSwitch(t);
  let switchLog = '';
  sw.process.onOutput((text) => (switchLog += text));
  const brokeARing = () => switchLog.split('\n').filter((line) => BROKE_A_RING.test(line));

  const [a, b] = await Promise.all([bootOnSwitch(t, sw, 'garbage-guest-a', guestMac()), bootOnSwitch(t, sw, 'garbage-guest-b', guestMac())]);
  const ipB = await addressOf(b);
  await addressOf(a);
  const guestPorts = (await ctlPorts(sw)).filter((p) => p.kind === 'vhost-user').map((p) => p.name);
  t.is(guestPorts.length, 2);

  // The third front-end: negotiates like QEMU and proves its port works with one good frame.
  const fe = TestFrontend.connect(sw.socketPath, { queueSize: QUEUE_SIZE, memoryBytes: MEMORY_BYTES });
  let feOpen = true;
  t.teardown(() => void (feOpen && fe.close()));
  await fe.negotiate();
  const joined = await waitForPorts(sw, (ports) => ports.filter((p) => p.kind === 'vhost-user').length === 3, 'the third front-end has a port');
  const garbagePort = joined.find((p) => p.kind === 'vhost-user' && !guestPorts.includes(p.name))!.name;
  sendGoodFrame(fe);
  await waitForPorts(sw, (ports) => portNamed(ports, garbagePort)?.txFrames === '1', `${garbagePort} forwarded its good frame`);

  // iperf3 A→B; once it is flowing, the third front-end breaks its rings.
  await b.mustRun('iperf3 -s -D -1');
  const txBefore = new Map((await ctlPorts(sw)).map((p) => [p.name, BigInt(p.txFrames)]));
  const iperf = a.mustRun(`iperf3 -c ${ipB} -t ${IPERF_SECONDS} -J`, 60_000);
  const flowing = await waitForPorts(
    sw,
    (ports) => guestPorts.some((name) => BigInt(portNamed(ports, name)!.txFrames) - txBefore.get(name)! >= FLOWING_FRAMES),
    'iperf3 traffic through the switch',
  );
  t.log(`iperf3 flowing: ${guestPorts.map((name) => `${name} tx ${portNamed(flowing, name)!.txFrames}`).join(', ')}`);

  postGarbage(fe);
  const cutOff = await waitForPorts(sw, () => brokeARing().length > 0, `a 'guest broke a ring' line`);
  const cutOffCounters = counters(portNamed(cutOff, garbagePort));
  t.log(`cut off: ${brokeARing().join(' | ')}`);

  // Kicks after the fault change nothing: the port stays cut off.
  sendGoodFrame(fe);
  fe.kick(RX);

  const flow = parseIperf3Json(await iperf);
  t.log(`iperf3 A→B while ${garbagePort} was cut off: ${mbps(flow.bitsPerSecond)}, retransmits ${flow.retransmits}`);
  t.true(flow.bitsPerSecond > 10e6, 'a sane rate');

  // The switch is alive and answers; the garbage port's counters did not move since the fault.
  t.is(sw.process.exitStatus, undefined, 'the switch process is alive');
  const after = await ctlPorts(sw);
  t.deepEqual(counters(portNamed(after, garbagePort)), cutOffCounters, `${garbagePort}'s counters stopped at the fault`);
  t.is(cutOffCounters.txFrames, '1', `${garbagePort} forwarded only its good frame`);
  for (const name of guestPorts) t.truthy(portNamed(after, name), `${name} is still on the switch`);
  const lines = brokeARing();
  t.is(lines.length, 1, lines.join('\n'));
  t.true(lines[0].includes(`port=${garbagePort}`), lines[0]);
  t.notRegex(switchLog, /panick|SIGBUS|SIGSEGV/);

  // The cut-off front-end leaves; the guests are unaffected and the switch still serves.
  fe.close();
  feOpen = false;
  await waitForPorts(sw, (ports) => !portNamed(ports, garbagePort), `${garbagePort} removed`);
  const ping = await a.run(`ping -c 3 -i 0.2 -w 10 ${ipB}`, 30_000);
  t.regex(ping.output, /3 packets transmitted, 3 (packets )?received/);
  await Promise.all([a.shutdown(), b.shutdown()]);
});
