/**
 * `npm run bench` — runs the benchmark scenarios in priority order, this back-end and its
 * reference alternately in every round, and writes bench/results/<stamp>.{json,md}.
 * Every process, TAP, namespace and hugepage file a run creates is removed when the run ends,
 * also when it fails; on SIGINT/SIGTERM the helpers' exit hooks kill and remove what is left.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { crossCpuRoundTripNs, PROBE_AFTER, PROBE_BEFORE } from './lib/cpu-placement.ts';
import { GENERATOR_CPU, SUBJECT_CPU } from './lib/dpdk.ts';
import { collectEnvironment } from './lib/environment.ts';
import { BENCH_USAGE, parseBenchArgs, type BenchOptions } from './lib/options.ts';
import { writeReport, type BenchReport } from './lib/report.ts';
import { casesShortOfSteadyRounds, type RunRecord, type Subject } from './lib/results.ts';
import type { RunOutcome, Scenario } from './lib/scenario.ts';
import { withScope } from './lib/scope.ts';
import { tapRate } from './scenarios/tap-rate.ts';
import { vm2vmRate } from './scenarios/vm2vm-rate.ts';
import { guestTcp } from './scenarios/guest-tcp.ts';
import { idleCost } from './scenarios/idle.ts';
import { scaling } from './scenarios/scaling.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoDir = resolve(benchDir, '..');

/** In priority order. */
const SCENARIOS: Scenario[] = [tapRate, vm2vmRate, guestTcp, idleCost, scaling];

function stampNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

function log(text: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}`);
}

function figuresText(figures: Record<string, number>): string {
  return Object.entries(figures)
    .map(([k, v]) => `${k}=${Number.isFinite(v) ? Math.round(v * 1000) / 1000 : v}`)
    .join(' ');
}

/**
 * Runs `attempt` and repeats it (at most options.retries times) while other processes used more
 * than options.maxNoise CPU during its window; returns the attempt with the least such noise.
 */
async function leastDisturbed(options: BenchOptions, attempt: () => Promise<RunOutcome>): Promise<RunOutcome> {
  let best: RunOutcome | undefined;
  for (let i = 0; i <= options.retries; i++) {
    const outcome = await attempt();
    const noise = outcome.figures.otherCpu;
    log(`  ${figuresText(outcome.figures)}`);
    if (best === undefined || noise < best.figures.otherCpu) best = { ...outcome, attempts: i + 1 };
    if (!(noise > options.maxNoise)) break;
    if (i < options.retries) log(`  other processes used ${noise.toFixed(2)} CPU meanwhile (> ${options.maxNoise}): repeating`);
  }
  return best!;
}

/** Runs `attempt` between two probes of the vCPUs' placement, which join its figures. */
async function probed(attempt: () => Promise<RunOutcome>): Promise<RunOutcome> {
  const before = crossCpuRoundTripNs(GENERATOR_CPU, SUBJECT_CPU);
  const outcome = await attempt();
  const after = crossCpuRoundTripNs(GENERATOR_CPU, SUBJECT_CPU);
  return { ...outcome, figures: { ...outcome.figures, [PROBE_BEFORE]: before, [PROBE_AFTER]: after } };
}

/** Runs both subjects once on `caseName`, in the order of `round`, and records both runs. */
async function runRound(scenario: Scenario, caseName: string, round: number, options: BenchOptions, record: (r: RunRecord) => void): Promise<void> {
  const run = scenario.run;
  if (!run) throw new Error(`scenario ${scenario.info.name} has neither run nor runAll`);
  // Alternate who goes first so that a drift within a round favours neither side.
  const order: Subject[] = round % 2 === 1 ? ['ours', 'reference'] : ['reference', 'ours'];
  for (const subject of order) {
    log(`${scenario.info.name} ${caseName} round ${round}: ${subject}`);
    const base = { scenario: scenario.info.name, case: caseName, subject, round };
    try {
      const outcome = await leastDisturbed(options, () => probed(() => withScope((scope) => run(scope, subject, caseName, options))));
      record({ ...base, ...outcome });
    } catch (error) {
      const message = (error as Error).stack ?? String(error);
      record({ ...base, figures: {}, commands: [], error: message });
      log(`  FAILED: ${message.split('\n')[0]}`);
    }
  }
}

/**
 * The planned rounds of every case, then extra rounds (at most options.maxExtraRounds) for the
 * cases with fewer than options.steadyRounds rounds made in one placement of the vCPUs. `runs`
 * are all the invocation's runs so far, `record` adds to them.
 */
async function runScenario(scenario: Scenario, options: BenchOptions, runs: RunRecord[], record: (r: RunRecord) => void): Promise<void> {
  await scenario.prepare?.(options);
  if (scenario.runAll) {
    await scenario.runAll(options, (r) => {
      log(`${r.scenario} ${r.case} round ${r.round}: ${figuresText(r.figures)}`);
      record(r);
    });
    return;
  }
  for (let round = 1; round <= options.rounds; round++) {
    for (const caseName of scenario.cases(options)) await runRound(scenario, caseName, round, options, record);
  }
  for (let extra = 1; extra <= options.maxExtraRounds; extra++) {
    const short = casesShortOfSteadyRounds(scenario.info, runs, options.steadyRounds);
    if (short.length === 0) break;
    const round = options.rounds + extra;
    log(`${scenario.info.name}: fewer than ${options.steadyRounds} rounds in one placement of the vCPUs for ${short.join(', ')}: extra round ${round}`);
    for (const caseName of short) await runRound(scenario, caseName, round, options, record);
  }
}

/** Rewrites the Markdown report (and charts) of a results JSON next to it. */
function rerender(jsonPath: string): { json: string; markdown: string } {
  const saved = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchReport;
  const defaults = parseBenchArgs([], dirname(jsonPath)) as BenchOptions;
  const report: BenchReport = {
    stamp: saved.stamp,
    command: saved.command,
    options: { ...defaults, ...saved.options },
    environment: saved.environment,
    scenarios: saved.scenarios,
    skipped: saved.skipped,
    runs: saved.runs,
  };
  return writeReport(dirname(resolve(jsonPath)), report);
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseBenchArgs(argv, join(benchDir, 'results'));
  if (parsed === 'help') {
    console.log(BENCH_USAGE);
    return 0;
  }
  const options = parsed;
  if (options.render) {
    const paths = rerender(options.render);
    log(`wrote ${paths.markdown}`);
    return 0;
  }
  const unknown = (options.only ?? []).filter((name) => !SCENARIOS.some((s) => s.info.name === name));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}\n${BENCH_USAGE}`);
  const selected = SCENARIOS.filter((s) => !options.only || options.only.includes(s.info.name));

  const report: BenchReport = {
    stamp: stampNow(),
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    options,
    environment: collectEnvironment(repoDir),
    scenarios: [],
    skipped: [],
    runs: [],
  };
  const save = () => writeReport(options.outDir, report);
  for (const scenario of selected) {
    log(`scenario ${scenario.info.name}: ${scenario.info.title}`);
    report.scenarios.push(scenario.info);
    try {
      await runScenario(scenario, options, report.runs, (r) => {
        report.runs.push(r);
        save(); // a partial report survives an interrupted invocation
      });
    } catch (error) {
      const reason = `could not run: ${(error as Error).message.split('\n')[0]}`;
      report.skipped.push({ name: scenario.info.name, reason });
      log(`scenario ${scenario.info.name} ${reason}`);
    }
  }
  const paths = save();
  log(`wrote ${paths.json} and ${paths.markdown}`);
  return report.runs.some((r) => r.error !== undefined) ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`bench: ${signal}: stopping; exit hooks remove processes, TAPs, namespaces and hugepage files`);
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`bench: ${(error as Error).message}`);
    process.exit(2);
  },
);
