/**
 * The figures in the bench's tables and charts (`formatValue`): three significant digits from 1 on
 * (two below), a unit prefix from a thousand on, and no zero dropped left of the decimal point.
 */
import test from 'ava';
import { formatValue } from '../../bench/lib/svg.ts';

test('figures keep their integer digits and lose only zeros after the point', (t) => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [1, '1'],
    [1.3, '1.3'],
    [10, '10'],
    [100, '100'],
    [130, '130'],
    [307.4, '307'],
    [1.05, '1.05'],
    [2.5, '2.5'],
    [0.5, '0.50'],
    [0.0667, '0.067'],
    [-120, '-120'],
    [Number.NaN, 'n/a'],
  ];
  for (const [value, text] of cases) t.is(formatValue(value), text, String(value));
});

test('a figure that rounds up to the next thousand takes the next prefix', (t) => {
  const cases: Array<[number, string]> = [
    [999.4, '999'],
    [999.7, '1.00k'],
    [1500, '1.50k'],
    [656_000, '656k'],
    [999_700, '1.00M'],
    [6_050_000, '6.05M'],
    [714_000_000, '714M'],
    [999_700_000, '1.00G'],
    [1.2e9, '1.20G'],
  ];
  for (const [value, text] of cases) t.is(formatValue(value), text, String(value));
});
