/**
 * Scenario 2 — VM-to-VM packet rate: two net_virtio_user ports owned by ONE testpmd (flowgen on
 * both: each port sends, and flowgen counts and frees what arrives on each) joined by
 *   ours:      this back-end's userspace switch (both ports connect to its one socket)
 *   reference: testpmd with two net_vhost ports in io forwarding (port 0 ⇄ port 1)
 * One generator process, not two: on 2 CPUs three busy-polling testpmds collapse to the
 * scheduler's time slice. The generator forwards on GENERATOR_CPU, the subject on SUBJECT_CPU.
 * The rate is the sum over both ports of the generator's Rx-pps (what crossed the subject).
 */
import { join } from 'node:path';
import { ensureHugepages } from '../../test/helpers/hugepages.ts';
import { uniqueName } from '../../test/helpers/netns.ts';
import { ensureDpdk, startTestpmd, vhostVdev, virtioUserVdev, type Testpmd } from '../../test/helpers/testpmd.ts';
import { socketDir, startSwitchBackend } from '../lib/backend.ts';
import { BENCH_MBUFS, BUSY_POLL_US, FRAME_CASES, GENERATOR_CPU, SUBJECT_CPU } from '../lib/dpdk.ts';
import { backendOutcome, packetRateMetrics, referenceOutcome } from '../lib/packet-rate.ts';
import type { BenchOptions } from '../lib/options.ts';
import { CpuWindow } from '../lib/procfs.ts';
import type { Subject } from '../lib/results.ts';
import type { RunOutcome, Scenario } from '../lib/scenario.ts';
import type { Scope } from '../lib/scope.ts';
import { delay } from '../lib/stats.ts';
import { mark, ratesSince } from '../lib/testpmd-window.ts';

const WARMUP_MS = 1000;
/**
 * Distinct MACs for the two virtio-user devices. Frames do not carry them: DPDK 22.11's flowgen
 * sends every frame from 00:01:02:03:04:00 to 00:01:02:03:04:01 whatever the port (--eth-peer is
 * not read by it; `ctl macs` shows that one station), so the switch floods an unknown destination.
 */
const PORT_MACS = ['02:00:00:be:00:01', '02:00:00:be:00:02'];

/** One testpmd, flowgen on two virtio_user ports (packed rings if `packed`), forwarding on GENERATOR_CPU. */
async function startGenerator(scope: Scope, socketPaths: [string, string], frameBytes: number, packed: boolean): Promise<Testpmd> {
  const generator = await startTestpmd({
    prefix: uniqueName('bg'),
    lcores: '0,1',
    mainLcore: SUBJECT_CPU, // forwards on GENERATOR_CPU
    vdevs: socketPaths.map((path, index) => virtioUserVdev({ index, path, mac: PORT_MACS[index], packedVq: packed })),
    fwdMode: 'flowgen',
    txpkts: [frameBytes],
    totalNumMbufs: BENCH_MBUFS,
    teardown: scope,
  });
  await generator.ready();
  await generator.waitForLinkUp(0);
  await generator.waitForLinkUp(1);
  return generator;
}

async function measure(opts: BenchOptions, generator: Testpmd, subjectPid: number): Promise<Record<string, number>> {
  await generator.waitForStats((ports) => ports.length === 2 && ports[0].rxPackets + ports[1].rxPackets > 0, 'frames arriving on the generator', 20_000);
  await delay(WARMUP_MS);
  const from = mark(generator);
  const cpuWindow = new CpuWindow(subjectPid, generator.pid);
  await delay(opts.seconds * 1000);
  const cpu = cpuWindow.end();
  // One more print so that the window holds every second of the measurement.
  const printed = generator.log().length;
  await generator.waitFor(() => /NIC statistics for port 1/.test(generator.log().slice(printed)), 'a statistics print', 5000);
  const window = ratesSince(generator, from, 2);
  return {
    pps: window.rxPps,
    ...cpu,
    ppsPerCpu: cpu.cpuShare > 0 ? window.rxPps / cpu.cpuShare : Number.NaN,
    generatorTxPps: window.txPps,
  };
}

interface Vm2vmCase {
  frameBytes: number;
  busyPollUs?: number;
  /** Packed rings on the generator's ports (both subjects serve them). */
  packed?: boolean;
  /** The generator's ports on named ports locked to its MAC and IPv4 address (port security). */
  portSecurity?: boolean;
}

/** What testpmd's flowgen sends every frame from, on both ports (the notes below). */
const FLOWGEN_SOURCE = { mac: '00:01:02:03:04:00', ip: '10.254.0.0' };

/**
 * Cases: the two frame sizes event-driven (the targets), 64B with this back-end's optional busy
 * polling, both sizes on packed rings, and 64B through ports locked to a MAC and an IPv4 address.
 */
const VM2VM_CASES: Record<string, Vm2vmCase> = {
  '64B': { frameBytes: FRAME_CASES['64B'] },
  '1518B': { frameBytes: FRAME_CASES['1518B'] },
  '64B busy-poll': { frameBytes: FRAME_CASES['64B'], busyPollUs: BUSY_POLL_US },
  '64B packed': { frameBytes: FRAME_CASES['64B'], packed: true },
  '1518B packed': { frameBytes: FRAME_CASES['1518B'], packed: true },
  '64B port security': { frameBytes: FRAME_CASES['64B'], portSecurity: true },
};

async function runOurs(scope: Scope, { frameBytes, busyPollUs, packed = false, portSecurity = false }: Vm2vmCase, opts: BenchOptions): Promise<RunOutcome> {
  // Port security: two named ports both locked to flowgen's one source, as the two ends of a
  // migration may be (flowgen sends from one MAC and address on both ports).
  const named: [string, string] | undefined = portSecurity ? [0, 1].map((i) => join(socketDir(scope), `port${i}.sock`)) as [string, string] : undefined;
  const extraArgs = named?.flatMap((path, i) => ['--port', `port${i}=${path},mac=${FLOWGEN_SOURCE.mac},ip=${FLOWGEN_SOURCE.ip}`]);
  const backend = await startSwitchBackend(scope, { cpu: String(SUBJECT_CPU), busyPollUs, extraArgs });
  const generator = await startGenerator(scope, named ?? [backend.socketPath, backend.socketPath], frameBytes, packed);
  const figures = await measure(opts, generator, backend.process.pid);
  backend.assertHealthy();
  return backendOutcome(figures, backend, generator);
}

async function runReference(scope: Scope, { frameBytes, packed = false }: Vm2vmCase, opts: BenchOptions): Promise<RunOutcome> {
  const dir = socketDir(scope);
  const sockets: [string, string] = [join(dir, 'vhost0.sock'), join(dir, 'vhost1.sock')];
  const reference = await startTestpmd({
    prefix: uniqueName('br'),
    lcores: '0,1',
    mainLcore: GENERATOR_CPU, // forwards on SUBJECT_CPU
    vdevs: sockets.map((iface, index) => vhostVdev({ index, iface })),
    fwdMode: 'io',
    totalNumMbufs: BENCH_MBUFS,
    teardown: scope,
  });
  await reference.ready();
  const generator = await startGenerator(scope, sockets, frameBytes, packed);
  await reference.waitForLinkUp(0);
  await reference.waitForLinkUp(1);
  const figures = await measure(opts, generator, reference.pid);
  return referenceOutcome(figures, reference, sockets[0], generator);
}

export const vm2vmRate: Scenario = {
  info: {
    name: 'vm2vm-rate',
    title: 'VM-to-VM packet rate (two virtio-user ports of one testpmd, flowgen both ways)',
    reference: 'DPDK testpmd with two net_vhost ports, io forwarding',
    referenceShort: 'testpmd net_vhost io',
    metrics: packetRateMetrics('frames/s delivered (sum of both directions)', 'generator Tx-pps (offered, both ports)'),
    notes: [
      `One testpmd owns both virtio-user ports and forwards on CPU ${GENERATOR_CPU}; the subject runs on CPU ${SUBJECT_CPU}.`,
      'Frame sizes on the wire incl. FCS: 64B = --txpkts=60, 1518B = --txpkts=1514.',
      '"packed": the generator\'s virtio-user ports on packed rings (packed_vq=1), served as such by both subjects.',
      `"busy-poll": this back-end with --busy-poll ${BUSY_POLL_US} (workers poll for ${BUSY_POLL_US} µs after the last frame, guest kicks off meanwhile); the other cases are event-driven.`,
      `"port security": the generator's ports on two named ports, each locked to flowgen's source (--port NAME=PATH,mac=${FLOWGEN_SOURCE.mac},ip=${FLOWGEN_SOURCE.ip}), so every frame's MAC and IPv4 source are checked; the reference has no such check.`,
      'testpmd flowgen sends every frame from 00:01:02:03:04:00 to 00:01:02:03:04:01 on both ports, so to a learning switch this is one station moving between the two ports on every frame and an unknown destination flooded (the reference, io forwarding, looks at no address).',
      'Rate = the generator’s Rx-pps summed over both ports, averaged over the prints in the window.',
    ],
  },
  cases: () => Object.keys(VM2VM_CASES),
  async prepare() {
    if (process.getuid?.() !== 0) throw new Error('vm2vm-rate needs root (hugepages)');
    await ensureDpdk();
    await ensureHugepages(512);
  },
  run(scope, subject: Subject, caseName, opts) {
    const vm2vmCase = VM2VM_CASES[caseName];
    return subject === 'ours' ? runOurs(scope, vm2vmCase, opts) : runReference(scope, vm2vmCase, opts);
  },
};
