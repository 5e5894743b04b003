/**
 * Scenario 5 — scaling with the number of connected ports: one switch, test front-ends connected
 * one after the other (each negotiates fully and starts its rings); at 1, 2, 4, … up to
 * --max-ports the back-end's resident memory is read. Figures per port count: RSS, RSS added per
 * port since start-up, and the median set-up time of a port (connect → last ring enabled, as the
 * front-end sees it). This back-end only: there is no reference for a switch's port count.
 */
import { startSwitchBackend } from '../lib/backend.ts';
import { GENERATOR_CPU, SUBJECT_CPU } from '../lib/dpdk.ts';
import { FrontendsProcess } from '../lib/frontends.ts';
import type { BenchOptions } from '../lib/options.ts';
import { rssKiB } from '../lib/procfs.ts';
import type { RunRecord } from '../lib/results.ts';
import type { Scenario } from '../lib/scenario.ts';
import { withScope } from '../lib/scope.ts';
import { delay, median } from '../lib/stats.ts';

/** Lets the back-end finish what the last port started (worker threads, mappings) before reading RSS. */
const SETTLE_MS = 300;

function checkpoints(maxPorts: number): number[] {
  const counts: number[] = [];
  for (let n = 1; n < maxPorts; n *= 2) counts.push(n);
  counts.push(maxPorts);
  return counts;
}

async function oneRound(options: BenchOptions, round: number, record: (r: RunRecord) => void): Promise<void> {
  await withScope(async (scope) => {
    const backend = await startSwitchBackend(scope, { cpu: String(SUBJECT_CPU) });
    await delay(SETTLE_MS);
    const baseKiB = rssKiB(backend.process.pid);
    const counts = checkpoints(options.maxPorts);
    const frontends = await FrontendsProcess.start(scope, { socketPaths: [backend.socketPath], count: options.maxPorts, checkpoints: counts, cpu: String(GENERATOR_CPU) });
    for (const n of counts) {
      await frontends.waitFor(`checkpoint ${n}`);
      await delay(SETTLE_MS);
      const kib = rssKiB(backend.process.pid);
      const times = [...frontends.portTimes()].filter(([port]) => port <= n).map(([, ms]) => ms);
      record({
        scenario: 'scaling',
        case: String(n),
        subject: 'ours',
        round,
        figures: { rssMiB: kib / 1024, rssPerPortKiB: (kib - baseKiB) / n, setupMs: median(times) },
        commands: [backend.command, frontends.command],
        features: { backend: backend.features() },
        placement: { backend: `taskset -c ${SUBJECT_CPU}`, frontends: `taskset -c ${GENERATOR_CPU}` },
        logs: [backend.process.logPath, frontends.process.logPath],
      });
      frontends.proceed();
    }
    await frontends.waitFor(`connected ${options.maxPorts}`);
  });
}

export const scaling: Scenario = {
  info: {
    name: 'scaling',
    title: 'Scaling: resident memory and set-up time per connected port (switch, test front-ends)',
    reference: 'none (this back-end only)',
    chart: 'line',
    caseLabel: 'connected ports',
    metrics: [
      { key: 'rssMiB', label: 'back-end resident memory', unit: 'MiB', higherIsBetter: false },
      { key: 'rssPerPortKiB', label: 'resident memory added per port', unit: 'KiB', higherIsBetter: false },
      { key: 'setupMs', label: 'median port set-up time (front-end view)', unit: 'ms', higherIsBetter: false },
    ],
    notes: ['Each test front-end has 2 MiB of guest memory and 1 queue pair of 256 entries; ports connect one at a time.'],
  },
  cases: (options) => checkpoints(options.maxPorts).map(String),
  async runAll(options, record) {
    for (let round = 1; round <= options.rounds; round++) await oneRound(options, round, record);
  },
};
