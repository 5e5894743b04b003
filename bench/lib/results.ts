/**
 * The result model of one `npm run bench` invocation: every single run (scenario, case, subject,
 * round) with its figures and the exact commands it ran, and per case the medians of both
 * subjects and their ratio. Ratios only mean something within one invocation: the reference and
 * this back-end run alternately on the same machine state.
 */
import { placementsOf, PROBE_AFTER, PROBE_BEFORE, steadyPlacement, type Placement } from './cpu-placement.ts';
import { median, ratio } from './stats.ts';

/** Which side of the comparison a run measured. */
export type Subject = 'ours' | 'reference';

/** What a figure means and which way is better. */
export interface MetricSpec {
  key: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  /** Context for reading the other figures (e.g. other processes' CPU): no ratio, no chart. */
  context?: boolean;
}

/** One run of one subject in one round. */
export interface RunRecord {
  scenario: string;
  case: string;
  subject: Subject;
  round: number;
  /** Figures by metric key (see the scenario's MetricSpec list). */
  figures: Record<string, number>;
  /** Every command line this run started, verbatim. */
  commands: string[];
  /** Negotiated features (names) and other facts about the connection. */
  features?: Record<string, string[] | string>;
  /** Which CPUs each process was allowed to run on, and on which it forwarded. */
  placement?: Record<string, string>;
  /** Log files of the processes (kept under .test-artifacts/logs). */
  logs?: string[];
  /** How many times the run was made (repeats when other processes disturbed it; see --max-noise). */
  attempts?: number;
  error?: string;
}

/** Medians of one metric of one case, both subjects: over all runs, and over the quiet runs. */
export interface Comparison extends MedianPair {
  scenario: string;
  case: string;
  metric: MetricSpec;
  quiet: MedianPair;
  /** ours / reference within each round that has both runs, by round. */
  pairedRatios: number[];
  /** The median of `pairedRatios`: see `pairedRatios()`. */
  pairedRatio: number;
  /** The rounds' ratios where both runs kept one CPU placement throughout: see `steadyRatios()`. */
  steadyRatios: SteadyRatio[];
  /** The median of `steadyRatios`. */
  steadyRatio: number;
}

/** One round's ours / reference, both runs made with the vCPUs in `placement` throughout. */
export interface SteadyRatio {
  round: number;
  ratio: number;
  placement: Placement;
}

/** The probes of the vCPUs' placement the runner adds to every run (context, no ratio). */
export const PLACEMENT_METRICS: MetricSpec[] = [
  { key: PROBE_BEFORE, label: 'CPU 0↔1 cache-line round trip before the run', unit: 'ns', higherIsBetter: false, context: true },
  { key: PROBE_AFTER, label: 'CPU 0↔1 cache-line round trip after the run', unit: 'ns', higherIsBetter: false, context: true },
];

export interface ScenarioInfo {
  name: string;
  title: string;
  /** What "reference" is in this scenario. */
  reference: string;
  /** A short name for the reference in chart legends. */
  referenceShort?: string;
  metrics: MetricSpec[];
  notes: string[];
  /** 'line': the cases are numbers (e.g. port counts) and only this back-end is measured. */
  chart?: 'bar' | 'line';
  /** What the cases are, for a line chart's x axis. */
  caseLabel?: string;
}

/** Medians of one metric over some runs of each subject, and their ratio. */
export interface MedianPair {
  ours: number;
  reference: number;
  /** ours / reference. */
  ratio: number;
  /** How many runs each median is taken over. */
  samples: { ours: number; reference: number };
}

function medianPair(runs: RunRecord[], key: string): MedianPair {
  const values = (subject: Subject) => runs.filter((r) => r.subject === subject && Number.isFinite(r.figures[key])).map((r) => r.figures[key]);
  const ours = values('ours');
  const reference = values('reference');
  const o = median(ours);
  const r = median(reference);
  return { ours: o, reference: r, ratio: ratio(o, r), samples: { ours: ours.length, reference: reference.length } };
}

/**
 * ours / reference of each round's two runs, which ran back to back. When the machine drifts
 * between slow and fast minutes, the ratio of the two medians can set one subject's slow rounds
 * against the other's fast ones; a round's pair shares the machine's state, so the median of
 * the pairs' ratios is the steadier estimate. Rounds missing either run are left out.
 */
export function pairedRatios(runs: RunRecord[], key: string): number[] {
  return roundPairs(runs, key).map(({ ratio }) => ratio);
}

/** Each round with both runs measuring `key` (in round order): the two runs and their finite ratio. */
function roundPairs(runs: RunRecord[], key: string): Array<{ round: number; ours: RunRecord; reference: RunRecord; ratio: number }> {
  const byRound = (subject: Subject) => new Map(runs.filter((r) => r.subject === subject && Number.isFinite(r.figures[key])).map((r) => [r.round, r]));
  const ours = byRound('ours');
  const reference = byRound('reference');
  return [...ours.keys()]
    .sort((a, b) => a - b)
    .filter((round) => reference.has(round))
    .map((round) => ({ round, ours: ours.get(round)!, reference: reference.get(round)!, ratio: ratio(ours.get(round)!.figures[key], reference.get(round)!.figures[key]) }))
    .filter((pair) => Number.isFinite(pair.ratio));
}

/**
 * ours / reference of the rounds whose two runs saw one placement of the vCPUs, the same for
 * both, from start to end (`cpu-placement.ts`; `placements`: those of the invocation). The
 * pairs of `pairedRatios` can still set a run on cores sharing a cache against one on cores that
 * do not, when the host moves the vCPUs between the two runs or during one: these cannot.
 */
export function steadyRatios(runs: RunRecord[], key: string, placements: Placement[]): SteadyRatio[] {
  return roundPairs(runs, key).flatMap(({ round, ours, reference, ratio }) => {
    const placement = steadyPlacement(ours, placements);
    return placement !== undefined && steadyPlacement(reference, placements) === placement ? [{ round, ratio, placement }] : [];
  });
}

/**
 * The cases of `info` that have fewer than `needed` rounds made in one placement of the vCPUs
 * (`steadyRatios` of the scenario's first metric), in the order they were first run. `runs` are
 * all the invocation's runs: the placements are found over all of them.
 */
export function casesShortOfSteadyRounds(info: ScenarioInfo, runs: RunRecord[], needed: number): string[] {
  const headline = info.metrics.find((m) => !m.context);
  if (headline === undefined || needed <= 0) return [];
  const placements = placementsOf(runs);
  const mine = runs.filter((r) => r.scenario === info.name && r.error === undefined);
  const cases = [...new Set(runs.filter((r) => r.scenario === info.name).map((r) => r.case))];
  return cases.filter((c) => steadyRatios(mine.filter((r) => r.case === c), headline.key, placements).length < needed);
}

/**
 * Compares the runs of `scenario` case by case and metric by metric: over every successful run,
 * over the quiet ones only (other processes used at most `maxNoise` CPU meanwhile), round by
 * round, and over the rounds made in one placement of the vCPUs.
 */
export function compare(info: ScenarioInfo, runs: RunRecord[], maxNoise: number): Comparison[] {
  const mine = runs.filter((r) => r.scenario === info.name && r.error === undefined);
  const placements = placementsOf(runs);
  const cases = [...new Set(mine.map((r) => r.case))];
  const comparisons: Comparison[] = [];
  for (const c of cases) {
    const ofCase = mine.filter((r) => r.case === c);
    const quietRuns = ofCase.filter((r) => r.figures.otherCpu !== undefined && r.figures.otherCpu <= maxNoise);
    for (const metric of [...info.metrics, ...PLACEMENT_METRICS]) {
      const all = medianPair(ofCase, metric.key);
      if (all.samples.ours === 0 && all.samples.reference === 0) continue;
      const quiet = medianPair(quietRuns, metric.key);
      const paired = pairedRatios(ofCase, metric.key);
      const steady = steadyRatios(ofCase, metric.key, placements);
      comparisons.push({
        scenario: info.name, case: c, metric, ...all, quiet,
        pairedRatios: paired, pairedRatio: median(paired),
        steadyRatios: steady, steadyRatio: median(steady.map((s) => s.ratio)),
      });
    }
  }
  return comparisons;
}
