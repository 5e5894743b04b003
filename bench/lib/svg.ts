/**
 * Hand-written SVG bar charts for the Markdown report (no dependencies): one group of two bars
 * (this back-end, reference) per case, with the values printed above the bars.
 */

export interface BarGroup {
  label: string;
  ours: number;
  reference: number;
}

const COLORS = { ours: '#2b6cb0', reference: '#a0aec0' };

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Compact number: 1234567 → "1.23M". */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  // Each bound is where three significant digits of the smaller unit round up to the next one.
  if (abs >= 999.5e6) return `${(value / 1e9).toPrecision(3)}G`;
  if (abs >= 999.5e3) return `${(value / 1e6).toPrecision(3)}M`;
  if (abs >= 999.5) return `${(value / 1e3).toPrecision(3)}k`;
  // Zeros at the end of a fraction go (1.30 is 1.3), not those of an integer (130 stays 130).
  if (abs >= 1 || abs === 0) return value.toPrecision(3).replace(/\.0*$|(\.\d*?)0+$/, '$1');
  return value.toPrecision(2);
}

/** A grouped bar chart: `title`, y axis in `unit`, one group per case. */
export function barChart(title: string, unit: string, groups: BarGroup[], referenceName = 'reference'): string {
  const barWidth = 40;
  const gap = 12;
  const groupWidth = barWidth * 2 + gap * 3;
  const left = 60;
  const top = 40;
  const plotHeight = 180;
  const width = Math.max(360, left + groups.length * groupWidth + 20, title.length * 7 + 20);
  const height = top + plotHeight + 60;
  const max = Math.max(...groups.flatMap((g) => [g.ours, g.reference]).filter(Number.isFinite), 0) || 1;
  const y = (v: number) => Math.round(top + plotHeight - (Number.isFinite(v) ? (v / max) * plotHeight : 0));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="12" y="${top + plotHeight / 2}" transform="rotate(-90 12 ${top + plotHeight / 2})" text-anchor="middle">${escapeXml(unit)}</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${width - 10}" y2="${top + plotHeight}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="black"/>`,
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${formatValue(max)}</text>`,
    `<text x="${left - 4}" y="${top + plotHeight}" text-anchor="end">0</text>`,
  ];
  groups.forEach((g, i) => {
    const x0 = left + gap + i * groupWidth;
    for (const [j, key] of (['ours', 'reference'] as const).entries()) {
      const value = g[key];
      const x = x0 + j * (barWidth + gap);
      const yTop = y(value);
      parts.push(`<rect x="${x}" y="${yTop}" width="${barWidth}" height="${top + plotHeight - yTop}" fill="${COLORS[key]}"/>`);
      parts.push(`<text x="${x + barWidth / 2}" y="${yTop - 3}" text-anchor="middle">${formatValue(value)}</text>`);
    }
    parts.push(`<text x="${x0 + barWidth + gap / 2}" y="${top + plotHeight + 16}" text-anchor="middle">${escapeXml(g.label)}</text>`);
  });
  const legendY = height - 18;
  parts.push(`<rect x="${left}" y="${legendY - 9}" width="10" height="10" fill="${COLORS.ours}"/><text x="${left + 14}" y="${legendY}">this back-end</text>`);
  parts.push(`<rect x="${left + 110}" y="${legendY - 9}" width="10" height="10" fill="${COLORS.reference}"/><text x="${left + 124}" y="${legendY}">${escapeXml(referenceName)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** A plain line chart of one series (x → y), for the scaling scenario. */
export function lineChart(title: string, xLabel: string, yLabel: string, points: Array<[number, number]>): string {
  const left = 60;
  const top = 40;
  const plotWidth = Math.max(360, title.length * 7 - left);
  const plotHeight = 180;
  const width = left + plotWidth + 20;
  const height = top + plotHeight + 50;
  const finite = points.filter(([, v]) => Number.isFinite(v));
  const maxX = Math.max(...finite.map(([x]) => x), 1);
  const maxY = Math.max(...finite.map(([, v]) => v), 0) || 1;
  const px = (x: number) => left + (x / maxX) * plotWidth;
  const py = (v: number) => top + plotHeight - (v / maxY) * plotHeight;
  const path = finite.map(([x, v], i) => `${i === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="black"/>`,
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${formatValue(maxY)}</text>`,
    `<text x="${left - 4}" y="${top + plotHeight}" text-anchor="end">0</text>`,
    `<text x="${left + plotWidth}" y="${top + plotHeight + 14}" text-anchor="end">${maxX}</text>`,
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 30}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text x="12" y="${top + plotHeight / 2}" transform="rotate(-90 12 ${top + plotHeight / 2})" text-anchor="middle">${escapeXml(yLabel)}</text>`,
    `<path d="${path}" fill="none" stroke="${COLORS.ours}" stroke-width="2"/>`,
    ...finite.map(([x, v]) => `<circle cx="${px(x).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${COLORS.ours}"/>`),
    '</svg>',
  ].join('\n');
}
