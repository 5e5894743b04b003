/**
 * Scenario 1 — TAP path packet rate.
 *   ours:      testpmd net_virtio_user txonly → this back-end (--tap) → TAP
 *   reference: testpmd net_virtio_user txonly → testpmd net_vhost ⇄ net_tap (io forwarding) → TAP
 * Frames are counted where they arrive: the TAP's rx_packets, read in the network namespace
 * the TAP was moved to (no address, IPv6 off: the kernel sends nothing of its own). The subject
 * runs on SUBJECT_CPU, the generator on GENERATOR_CPU; the subject's CPU time comes from
 * /proc/<pid>/stat over the same window.
 */
import { ensureHugepages } from '../../test/helpers/hugepages.ts';
import { createTap, NetNs, uniqueName } from '../../test/helpers/netns.ts';
import { mustRun } from '../../test/helpers/proc.ts';
import { ensureDpdk, startTestpmd, tapVdev, vhostVdev, virtioUserVdev, type Testpmd } from '../../test/helpers/testpmd.ts';
import { startTapBackend, socketDir } from '../lib/backend.ts';
import { BENCH_MBUFS, BUSY_POLL_US, FRAME_CASES, GENERATOR_CPU, SUBJECT_CPU } from '../lib/dpdk.ts';
import { backendOutcome, packetRateMetrics, referenceOutcome } from '../lib/packet-rate.ts';
import { CpuWindow, ifCounter } from '../lib/procfs.ts';
import type { Subject } from '../lib/results.ts';
import type { RunOutcome, Scenario } from '../lib/scenario.ts';
import type { Scope } from '../lib/scope.ts';
import { delay } from '../lib/stats.ts';
import { mark, ratesSince } from '../lib/testpmd-window.ts';
import type { BenchOptions } from '../lib/options.ts';
import { join } from 'node:path';

const WARMUP_MS = 1000;

/** Frame size and queue pairs per case (2 queue pairs: one generator lcore serves both queues). */
const TAP_CASES: Record<string, { frameBytes: number; queuePairs: number; busyPollUs?: number }> = {
  '64B': { frameBytes: FRAME_CASES['64B'], queuePairs: 1 },
  '64B busy-poll': { frameBytes: FRAME_CASES['64B'], queuePairs: 1, busyPollUs: BUSY_POLL_US },
  '1518B': { frameBytes: FRAME_CASES['1518B'], queuePairs: 1 },
  '64B 2qp': { frameBytes: FRAME_CASES['64B'], queuePairs: 2 },
};

/** A namespace for the TAP's host end: IPv6 off so the kernel adds no frames of its own. */
async function quietNamespace(scope: Scope): Promise<NetNs> {
  const ns = await NetNs.create(scope);
  await mustRun('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  return ns;
}

async function bringUp(ns: NetNs, tap: string): Promise<void> {
  await mustRun('ip', ['-n', ns.name, 'link', 'set', tap, 'up']);
}

/** The txonly generator on GENERATOR_CPU, connected to `socketPath`. */
async function startGenerator(scope: Scope, socketPath: string, frameBytes: number, queuePairs: number): Promise<Testpmd> {
  const generator = await startTestpmd({
    prefix: uniqueName('bg'),
    lcores: '0,1',
    mainLcore: SUBJECT_CPU, // forwards on GENERATOR_CPU
    vdevs: [virtioUserVdev({ path: socketPath, queues: queuePairs })],
    fwdMode: 'txonly',
    rxq: queuePairs,
    txq: queuePairs,
    txpkts: [frameBytes],
    totalNumMbufs: BENCH_MBUFS,
    teardown: scope,
  });
  await generator.ready();
  await generator.waitForLinkUp(0);
  await generator.waitForStats((ports) => ports[0]?.txPackets > 0, 'txPackets > 0');
  return generator;
}

/** Measures frames/s arriving on `tap` and the subject's CPU share over the window. */
async function measure(opts: BenchOptions, generator: Testpmd, ns: NetNs, tap: string, subjectPid: number): Promise<Record<string, number>> {
  await delay(WARMUP_MS);
  const from = mark(generator);
  const rx0 = ifCounter(tap, 'rx_packets', ns.name);
  const cpuWindow = new CpuWindow(subjectPid, generator.pid);
  const t0 = performance.now();
  await delay(opts.seconds * 1000);
  const rx1 = ifCounter(tap, 'rx_packets', ns.name);
  const cpu = cpuWindow.end();
  const t1 = performance.now();
  const window = ratesSince(generator, from, 1);
  const pps = (rx1 - rx0) / ((t1 - t0) / 1000);
  return {
    pps,
    ...cpu,
    ppsPerCpu: cpu.cpuShare > 0 ? pps / cpu.cpuShare : Number.NaN,
    generatorTxPps: window.txPps,
  };
}

async function runOurs(scope: Scope, frameBytes: number, queuePairs: number, opts: BenchOptions, busyPollUs?: number): Promise<RunOutcome> {
  // With more queue pairs the back-end creates the TAP itself (IFF_MULTI_QUEUE); it goes when the back-end exits.
  const tap = queuePairs === 1 ? await createTap(scope, uniqueName('bt')) : uniqueName('bt');
  const backend = await startTapBackend(scope, { cpu: String(SUBJECT_CPU), tap, queues: queuePairs, busyPollUs });
  const ns = await quietNamespace(scope);
  await ns.moveLink(tap);
  await bringUp(ns, tap);
  const generator = await startGenerator(scope, backend.socketPath, frameBytes, queuePairs);
  const figures = await measure(opts, generator, ns, tap, backend.process.pid);
  backend.assertHealthy();
  return backendOutcome(figures, backend, generator);
}

async function runReference(scope: Scope, frameBytes: number, queuePairs: number, opts: BenchOptions): Promise<RunOutcome> {
  const socketPath = join(socketDir(scope), 'vhost.sock');
  const tap = uniqueName('br');
  const reference = await startTestpmd({
    prefix: uniqueName('br'),
    lcores: '0,1',
    mainLcore: GENERATOR_CPU, // forwards on SUBJECT_CPU
    vdevs: [vhostVdev({ iface: socketPath, queues: queuePairs }), tapVdev({ index: 1, iface: tap })],
    fwdMode: 'io',
    rxq: queuePairs,
    txq: queuePairs,
    totalNumMbufs: BENCH_MBUFS,
    teardown: scope,
  });
  await reference.ready();
  // net_tap made the TAP in the root namespace; its fd keeps working after the move.
  const ns = await quietNamespace(scope);
  await ns.moveLink(tap);
  await bringUp(ns, tap);
  const generator = await startGenerator(scope, socketPath, frameBytes, queuePairs);
  await reference.waitForLinkUp(0);
  const figures = await measure(opts, generator, ns, tap, reference.pid);
  return referenceOutcome(figures, reference, socketPath, generator);
}

export const tapRate: Scenario = {
  info: {
    name: 'tap-rate',
    title: 'TAP path packet rate (testpmd virtio-user txonly → back-end → TAP)',
    reference: 'DPDK testpmd net_vhost + net_tap, io forwarding',
    metrics: packetRateMetrics('frames/s arriving on the TAP', 'generator Tx-pps (offered)'),
    notes: [
      `Subject on CPU ${SUBJECT_CPU}, generator forwarding on CPU ${GENERATOR_CPU}.`,
      'Frame sizes on the wire incl. FCS: 64B = --txpkts=60, 1518B = --txpkts=1514.',
      'Counted on the TAP (rx_packets in a network namespace, IPv6 off, no address).',
      `64B busy-poll: this back-end with --busy-poll ${BUSY_POLL_US}.`,
      '64B 2qp: 2 queue pairs end to end (virtio_user queues=2, --rxq/--txq=2; this back-end --queues 2 on a multi-queue TAP; net_vhost queues=2 + net_tap with 2 queues); the generator still has one lcore.',
    ],
  },
  cases: () => Object.keys(TAP_CASES),
  async prepare() {
    if (process.getuid?.() !== 0) throw new Error('tap-rate needs root (hugepages, TAP, namespaces)');
    await ensureDpdk();
    await ensureHugepages(512);
  },
  run(scope, subject: Subject, caseName, opts) {
    const { frameBytes, queuePairs, busyPollUs } = TAP_CASES[caseName];
    return subject === 'ours' ? runOurs(scope, frameBytes, queuePairs, opts, busyPollUs) : runReference(scope, frameBytes, queuePairs, opts);
  },
};
