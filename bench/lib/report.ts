/**
 * Writes one invocation's results: `<stamp>.json` (every run with its commands, features and
 * placement, the comparisons, the environment) and `<stamp>.md` (tables of medians and ratios,
 * one SVG bar chart per metric, written next to it as `<stamp>-<scenario>-<metric>.svg`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Environment } from './environment.ts';
import type { BenchOptions } from './options.ts';
import { compare, type Comparison, type RunRecord, type ScenarioInfo } from './results.ts';
import { barChart, formatValue, lineChart } from './svg.ts';

export interface BenchReport {
  stamp: string;
  command: string;
  options: BenchOptions;
  environment: Environment;
  scenarios: ScenarioInfo[];
  /** Scenarios that were selected but not reached or not implemented, with the reason. */
  skipped: Array<{ name: string; reason: string }>;
  runs: RunRecord[];
}

const DRIFT_NOTE =
  'This machine has 2 CPUs shared with other work, and its packet rates drift 2–3× between ' +
  'minutes: the host moves its two vCPUs between cores that share a cache and cores that do not ' +
  '(the cache-line round trip between them, probed before and after every run, flips between ' +
  'about 30, 65 and 300 ns). Only the ratios measured in one invocation mean anything, best those of ' +
  'rounds made in one placement; never compare absolute figures across runs.';

function ratioText(c: Comparison, value: number): string {
  if (c.metric.context) return '—';
  if (!Number.isFinite(value)) return 'n/a';
  return `${value >= 0.1 ? value.toFixed(2) : value.toPrecision(2)}×`;
}

/** The paired ratio with the rounds' own ratios after it, e.g. `0.61× (0.83, 0.71, 0.37, 0.56, 0.61)`. */
function pairedText(c: Comparison): string {
  if (c.metric.context || c.pairedRatios.length === 0) return ratioText(c, c.pairedRatio);
  return `${ratioText(c, c.pairedRatio)} (${c.pairedRatios.map((r) => r.toFixed(2)).join(', ')})`;
}

/** The steady rounds' median ratio, then each round's, e.g. `0.97× (r1 @66 ns 0.97, r3 @300 ns 0.95)`. */
function steadyText(c: Comparison): string {
  if (c.metric.context || c.steadyRatios.length === 0) return ratioText(c, c.steadyRatio);
  return `${ratioText(c, c.steadyRatio)} (${c.steadyRatios.map((s) => `r${s.round} @${s.placement.typicalNs} ns ${s.ratio.toFixed(2)}`).join(', ')})`;
}

/** How many extra rounds a case could get, for the report's heading (options of older results lack it). */
function extraRoundsText(options: BenchOptions): string {
  if (!(options.steadyRounds > 0) || !(options.maxExtraRounds > 0)) return '';
  return ` (and up to ${options.maxExtraRounds} more for a case with fewer than ${options.steadyRounds} rounds made in one placement of the vCPUs)`;
}

/** Writes the JSON and Markdown (and SVGs); returns the two main paths. */
export function writeReport(outDir: string, report: BenchReport): { json: string; markdown: string } {
  mkdirSync(outDir, { recursive: true });
  const comparisons = report.scenarios.flatMap((s) => compare(s, report.runs, report.options.maxNoise));
  const jsonPath = join(outDir, `${report.stamp}.json`);
  writeFileSync(jsonPath, `${JSON.stringify({ ...report, comparisons, note: DRIFT_NOTE }, null, 2)}\n`);

  const md: string[] = [
    `# vhost-user-net benchmark ${report.stamp}`,
    '',
    `Command: \`${report.command}\``,
    '',
    `> ${DRIFT_NOTE}`,
    '',
    `Rounds ${report.options.rounds}${extraRoundsText(report.options)}, ${report.options.seconds} s measured per run (after warm-up); each round runs this back-end and the reference alternately (the order flips every round). Figures are medians over the rounds; ratio = this back-end / reference, given three ways: the ratio of the two medians; the median of each round's own ratio (its two runs ran back to back: the steadier figure when the machine drifts between rounds); and the median over the rounds whose two runs both kept one placement of the vCPUs from start to end, the same for both (listed as round, the placement's typical cache-line round trip between the two CPUs, ratio: the like-for-like figure).`,
    '',
    '## Environment',
    '',
    ...Object.entries(report.environment).map(([k, v]) => `- ${k}: ${Array.isArray(v) ? v.map((x) => (typeof x === 'number' ? x.toFixed(2) : x)).join(' ') : v}`),
    '',
  ];
  for (const scenario of report.scenarios) {
    const mine = comparisons.filter((c) => c.scenario === scenario.name);
    const runs = report.runs.filter((r) => r.scenario === scenario.name);
    md.push(`## ${scenario.title}`, '', `Reference: ${scenario.reference}.`, '', ...scenario.notes.map((n) => `- ${n}`), '');
    if (mine.length > 0) {
      const noisy = scenario.metrics.some((m) => m.key === 'otherCpu');
      md.push(
        `| case | metric | this back-end | reference | ratio of medians | median of each round's ratio (by round) | median ratio of rounds in one placement (round, placement, ratio) | runs (ours/ref) |${noisy ? ` ratio, quiet runs only (other CPU ≤ ${report.options.maxNoise}) | quiet runs |` : ''}`,
        `|---|---|---:|---:|---:|---|---|---|${noisy ? '---:|---|' : ''}`,
      );
      for (const c of mine) {
        const quiet = noisy ? ` ${ratioText(c, c.quiet.ratio)} | ${c.quiet.samples.ours}/${c.quiet.samples.reference} |` : '';
        md.push(`| ${c.case} | ${c.metric.label} (${c.metric.unit}) | ${formatValue(c.ours)} | ${formatValue(c.reference)} | ${ratioText(c, c.ratio)} | ${pairedText(c)} | ${steadyText(c)} | ${c.samples.ours}/${c.samples.reference} |${quiet}`);
      }
      md.push('');
      for (const metric of scenario.metrics.filter((m) => !m.context)) {
        const groups = mine.filter((c) => c.metric.key === metric.key).map((c) => ({ label: c.case, ours: c.ours, reference: c.reference }));
        if (groups.length === 0) continue;
        const file = `${report.stamp}-${scenario.name}-${metric.key}.svg`;
        const chart = scenario.chart === 'line'
          ? lineChart(`${scenario.name}: ${metric.label}`, scenario.caseLabel ?? 'case', metric.unit, groups.map((g) => [Number.parseFloat(g.label), g.ours]))
          : barChart(`${scenario.name}: ${metric.label}`, metric.unit, groups, scenario.referenceShort ?? 'reference');
        writeFileSync(join(outDir, file), chart);
        md.push(`![${scenario.name} ${metric.key}](${file})`, '');
      }
    }
    const repeated = runs.filter((r) => (r.attempts ?? 1) > 1);
    if (repeated.length > 0) {
      md.push(
        `Repeated because other processes used more than ${report.options.maxNoise} CPU meanwhile (the least disturbed attempt is kept):`,
        '',
        ...repeated.map((r) => `- ${r.case} ${r.subject} round ${r.round}: ${r.attempts} attempts, kept one with other CPU ${formatValue(r.figures.otherCpu)}`),
        '',
      );
    }
    const failed = runs.filter((r) => r.error !== undefined);
    if (failed.length > 0) {
      md.push('Failed runs:', '', ...failed.map((r) => `- ${r.case} ${r.subject} round ${r.round}: ${r.error?.split('\n')[0]}`), '');
    }
    const first = runs.find((r) => r.error === undefined);
    if (first) {
      md.push('<details><summary>Commands, features and placement (first run of each subject)</summary>', '');
      for (const subject of ['ours', 'reference'] as const) {
        const r = runs.find((x) => x.subject === subject && x.error === undefined);
        if (!r) continue;
        md.push(`**${subject}** (${r.case}, round ${r.round})`, '', '```', ...r.commands, '```', '');
        for (const [k, v] of Object.entries(r.features ?? {})) md.push(`- features ${k}: ${Array.isArray(v) ? v.join(' ') : v}`);
        for (const [k, v] of Object.entries(r.placement ?? {})) md.push(`- placement ${k}: ${v}`);
        md.push('');
      }
      md.push('</details>', '');
    }
  }
  if (report.skipped.length > 0) {
    md.push('## Not measured', '', ...report.skipped.map((s) => `- ${s.name}: ${s.reason}`), '');
  }
  const markdownPath = join(outDir, `${report.stamp}.md`);
  writeFileSync(markdownPath, `${md.join('\n')}\n`);
  return { json: jsonPath, markdown: markdownPath };
}
