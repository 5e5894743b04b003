/**
 * The bench's result model: ratios of a drifting machine's runs are compared round by round.
 */
import test from 'ava';
import { placementsOf, steadyPlacement } from '../../bench/lib/cpu-placement.ts';
import { casesShortOfSteadyRounds, compare, pairedRatios, type RunRecord, type ScenarioInfo } from '../../bench/lib/results.ts';

const run = (subject: RunRecord['subject'], round: number, pps: number): RunRecord => ({ scenario: 's', case: 'c', subject, round, figures: { pps }, commands: [] });

const info: ScenarioInfo = { name: 's', title: 'S', reference: 'ref', metrics: [{ key: 'pps', label: 'rate', unit: 'pps', higherIsBetter: true }], notes: [] };

test('each round is compared with itself: a drift between rounds does not set slow against fast', (t) => {
  // Round 1 slow for both, rounds 2 and 3 fast for both: this back-end is at half the
  // reference's rate throughout, but the ratio of the medians mixes its slow round in.
  const runs = [run('ours', 1, 5), run('reference', 1, 10), run('ours', 2, 50), run('reference', 2, 100), run('ours', 3, 50), run('reference', 3, 100)];
  t.deepEqual(pairedRatios(runs, 'pps'), [0.5, 0.5, 0.5]);
  const [c] = compare(info, runs, 0.5);
  t.is(c.pairedRatio, 0.5);
  t.is(c.ratio, 0.5);
  // Swap one slow round: ours slow in round 3, the reference slow in round 1.
  const mixed = [run('ours', 1, 50), run('reference', 1, 10), run('ours', 2, 50), run('reference', 2, 100), run('ours', 3, 5), run('reference', 3, 100)];
  t.deepEqual(pairedRatios(mixed, 'pps'), [5, 0.5, 0.05]);
  t.is(compare(info, mixed, 0.5)[0].pairedRatio, 0.5);
});

test('a round without both runs (one failed) is left out of the pairs', (t) => {
  const runs = [run('ours', 1, 5), run('reference', 1, 10), run('ours', 2, 7), { ...run('reference', 2, 0), figures: {}, error: 'boom' }];
  t.deepEqual(pairedRatios(runs, 'pps'), [0.5]);
  t.deepEqual(pairedRatios([run('ours', 1, 5)], 'pps'), []);
  t.true(Number.isNaN(compare(info, [run('ours', 1, 5)], 0.5)[0].pairedRatio));
});

const probed = (subject: RunRecord['subject'], round: number, pps: number, before: number, after: number): RunRecord => ({
  ...run(subject, round, pps),
  figures: { pps, crossCpuNsBefore: before, crossCpuNsAfter: after },
});

test('rounds count as like-for-like only when all four probes saw one placement of the vCPUs', (t) => {
  const runs = [
    // Round 1: both runs on cores sharing a cache (~60 ns): kept.
    probed('ours', 1, 60, 62, 58), probed('reference', 1, 61, 60, 64),
    // Round 2: the host moved the vCPUs during the reference's run: left out.
    probed('ours', 2, 60, 61, 63), probed('reference', 2, 45, 60, 330),
    // Round 3: ours near, the reference far throughout: left out.
    probed('ours', 3, 60, 61, 63), probed('reference', 3, 30, 335, 340),
    // Round 4: both on cores that do not (~330 ns): kept.
    probed('ours', 4, 28, 330, 345), probed('reference', 4, 32, 339, 331),
  ];
  const [c] = compare(info, runs, 0.5);
  t.deepEqual(c.steadyRatios.map((s) => [s.round, s.placement.typicalNs]), [[1, 61], [4, 335]]);
  t.is(c.steadyRatios[0].ratio, 60 / 61);
  t.is(c.steadyRatio, (60 / 61 + 28 / 32) / 2);
  // The round-by-round ratios still list every round.
  t.is(c.pairedRatios.length, 4);
  // The probes are reported as context (no ratio).
  const probes = compare(info, runs, 0.5).filter((x) => x.metric.context).map((x) => x.metric.key);
  t.deepEqual(probes, ['crossCpuNsBefore', 'crossCpuNsAfter']);
});

test('placements are the clusters of the probes: ~30, ~65 and ~300 ns are three', (t) => {
  const runs = [probed('ours', 1, 1, 29.1, 31.6), probed('reference', 1, 1, 62.6, 70.9), probed('ours', 2, 1, 294, 340), probed('reference', 2, 1, 66, 30)];
  t.deepEqual(placementsOf(runs).map((p) => [p.lowNs, p.highNs]), [[29.1, 31.6], [62.6, 70.9], [294, 340]]);
  const placements = placementsOf(runs);
  t.is(steadyPlacement(runs[0], placements)?.typicalNs, 30);
  t.is(steadyPlacement(runs[2], placements)?.typicalNs, 317);
  // Moved from one to another during the run.
  t.is(steadyPlacement(runs[3], placements), undefined);
  // Not probed.
  t.is(steadyPlacement(run('ours', 3, 1), placements), undefined);
});

test('runs without probes (older results, scenarios without a reference) have no like-for-like rounds', (t) => {
  const runs = [run('ours', 1, 5), run('reference', 1, 10), probed('ours', 2, 5, 60, 60)];
  const [c] = compare(info, runs, 0.5);
  t.deepEqual(c.steadyRatios, []);
  t.true(Number.isNaN(c.steadyRatio));
});

test('a case with too few rounds in one placement is the one given more rounds', (t) => {
  const two: ScenarioInfo = { ...info, metrics: [{ key: 'ctx', label: 'c', unit: '', higherIsBetter: true, context: true }, ...info.metrics] };
  const inCase = (c: string, r: RunRecord): RunRecord => ({ ...r, case: c });
  const runs = [
    // Case a: rounds 1 and 2 in one placement (~60 ns).
    inCase('a', probed('ours', 1, 5, 60, 61)), inCase('a', probed('reference', 1, 5, 62, 60)),
    inCase('a', probed('ours', 2, 5, 61, 60)), inCase('a', probed('reference', 2, 5, 60, 63)),
    // Case b: round 1 moved during a run, round 2 in one placement (~330 ns); round 3's reference failed.
    inCase('b', probed('ours', 1, 5, 60, 330)), inCase('b', probed('reference', 1, 5, 330, 331)),
    inCase('b', probed('ours', 2, 5, 333, 330)), inCase('b', probed('reference', 2, 5, 329, 335)),
    inCase('b', probed('ours', 3, 5, 61, 60)), { ...inCase('b', run('reference', 3, 0)), figures: {}, error: 'boom' },
  ];
  t.deepEqual(casesShortOfSteadyRounds(two, runs, 2), ['b']);
  t.deepEqual(casesShortOfSteadyRounds(two, runs, 1), []);
  t.deepEqual(casesShortOfSteadyRounds(two, runs, 3), ['a', 'b']);
  t.deepEqual(casesShortOfSteadyRounds(two, runs, 0), [], '0: never');
});
