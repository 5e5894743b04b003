/**
 * Scenario 4 — idle cost: CPU used by a back-end with 8 connected, negotiated, idle guests (test
 * front-ends in a separate process: every ring started and enabled, nothing ever kicked).
 *   ours:      this back-end's switch, one socket, 8 ports
 *   reference: testpmd with 8 net_vhost ports in io forwarding (it polls every queue forever)
 * Measured over max(10 s, --seconds) after 1 s of settling; the back-end's resident memory too.
 */
import { join } from 'node:path';
import { ensureHugepages } from '../../test/helpers/hugepages.ts';
import { uniqueName } from '../../test/helpers/netns.ts';
import { ensureDpdk, startTestpmd, vhostVdev } from '../../test/helpers/testpmd.ts';
import { socketDir, startSwitchBackend } from '../lib/backend.ts';
import { affinityText, GENERATOR_CPU, SUBJECT_CPU, testpmdPlacement } from '../lib/dpdk.ts';
import { FrontendsProcess } from '../lib/frontends.ts';
import type { BenchOptions } from '../lib/options.ts';
import { CpuWindow, rssKiB } from '../lib/procfs.ts';
import type { Subject } from '../lib/results.ts';
import type { RunOutcome, Scenario } from '../lib/scenario.ts';
import type { Scope } from '../lib/scope.ts';
import { delay } from '../lib/stats.ts';

const GUESTS = 8;
const SETTLE_MS = 1000;

async function measureIdle(opts: BenchOptions, pid: number): Promise<Record<string, number>> {
  await delay(SETTLE_MS);
  const window = new CpuWindow(pid);
  await delay(Math.max(10, opts.seconds) * 1000);
  const cpu = window.end();
  return { cpuShare: cpu.cpuShare, otherCpu: cpu.otherCpu, rssMiB: rssKiB(pid) / 1024 };
}

async function runOurs(scope: Scope, opts: BenchOptions): Promise<RunOutcome> {
  const backend = await startSwitchBackend(scope, { cpu: String(SUBJECT_CPU) });
  const frontends = await FrontendsProcess.start(scope, { socketPaths: [backend.socketPath], count: GUESTS, cpu: String(GENERATOR_CPU) });
  await frontends.waitFor(`connected ${GUESTS}`);
  const figures = await measureIdle(opts, backend.process.pid);
  backend.assertHealthy();
  return {
    figures,
    commands: [backend.command, frontends.command],
    features: { backend: backend.features() },
    placement: { backend: `taskset -c ${SUBJECT_CPU}; threads ${affinityText(backend.process.pid)}`, frontends: `taskset -c ${GENERATOR_CPU}` },
    logs: [backend.process.logPath, frontends.process.logPath],
  };
}

async function runReference(scope: Scope, opts: BenchOptions): Promise<RunOutcome> {
  const dir = socketDir(scope);
  const sockets = Array.from({ length: GUESTS }, (_, i) => join(dir, `vhost${i}.sock`));
  const reference = await startTestpmd({
    prefix: uniqueName('bi'),
    lcores: '0,1',
    mainLcore: GENERATOR_CPU, // forwards on SUBJECT_CPU
    vdevs: sockets.map((iface, index) => vhostVdev({ index, iface })),
    fwdMode: 'io',
    totalNumMbufs: 16384,
    teardown: scope,
  });
  await reference.ready();
  const frontends = await FrontendsProcess.start(scope, { socketPaths: sockets, count: GUESTS, cpu: String(GENERATOR_CPU) });
  await frontends.waitFor(`connected ${GUESTS}`);
  const figures = await measureIdle(opts, reference.pid);
  return {
    figures,
    commands: [`dpdk-testpmd ${reference.args.join(' ')}`, frontends.command],
    placement: { reference: testpmdPlacement(reference), frontends: `taskset -c ${GENERATOR_CPU}` },
    logs: [reference.logPath, frontends.process.logPath],
  };
}

export const idleCost: Scenario = {
  info: {
    name: 'idle',
    title: `Idle cost: ${GUESTS} connected idle guests (test front-ends)`,
    reference: `DPDK testpmd with ${GUESTS} net_vhost ports, io forwarding`,
    referenceShort: 'testpmd net_vhost',
    metrics: [
      { key: 'cpuShare', label: 'back-end CPU while idle (1.0 = one core)', unit: 'CPU', higherIsBetter: false },
      { key: 'rssMiB', label: 'back-end resident memory', unit: 'MiB', higherIsBetter: false },
      { key: 'otherCpu', label: 'CPU used by other processes meanwhile (noise)', unit: 'CPU', higherIsBetter: false, context: true },
    ],
    notes: [
      'Target (issue 6): ≤ 1 % of one CPU for this back-end.',
      'The front-ends negotiate every feature offered and start every ring, then never kick.',
    ],
  },
  cases: () => [`${GUESTS} guests`],
  async prepare() {
    if (process.getuid?.() !== 0) throw new Error('idle needs root (hugepages for the reference)');
    await ensureDpdk();
    await ensureHugepages(512);
  },
  run(scope, subject: Subject, _caseName, opts) {
    return subject === 'ours' ? runOurs(scope, opts) : runReference(scope, opts);
  },
};
