/**
 * The bench's result model: ratios of a drifting machine's runs are compared round by round.
 */
import test from 'ava';
import { compare, pairedRatios, type RunRecord, type ScenarioInfo } from '../../bench/lib/results.ts';

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
