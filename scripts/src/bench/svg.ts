// Horizontal bar charts (grouped, or stacked by process) as plain SVG text. Written by hand rather than with a plotting
// library: the charts are simple (a few bars per group), the output must be deterministic so a
// re-run shows in a diff only what changed, and it must render on GitHub without scripts or fonts.

export interface Bar {
  label: string;
  value: number | undefined;
  /** Our system's bars are drawn in the accent colour, baselines in grey. */
  ours?: boolean;
}

export interface BarGroup {
  label: string;
  bars: readonly Bar[];
  /** Shown to the right of the group, e.g. "64× naive". */
  note?: string;
}

export interface BarChart {
  title: string;
  subtitle?: string;
  unit: string;
  groups: readonly BarGroup[];
  /** Log scale for values that span orders of magnitude (the naive loop vs the dispatcher). */
  log?: boolean;
}

const WIDTH = 760;
const LABEL_WIDTH = 190;
const VALUE_ROOM = 150;
const BAR_HEIGHT = 18;
const BAR_GAP = 4;
const GROUP_GAP = 16;
const TOP = 78;
const OURS = '#2b6cb0';
const BASELINE = '#a0aec0';

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function formatValue(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function renderBarChart(chart: BarChart): string {
  const values = chart.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)).filter((v) => v > 0);
  const max = Math.max(1, ...values);
  const min = Math.min(max, ...values);
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_ROOM;
  // Log scale starts one decade below the smallest value so the smallest bar is still visible.
  const logFloor = Math.floor(Math.log10(Math.max(min, 1e-9))) - 1;
  const scale = (v: number): number => {
    if (v <= 0) return 0;
    if (!chart.log) return (v / max) * plotWidth;
    const span = Math.log10(max) - logFloor;
    return span > 0 ? ((Math.log10(v) - logFloor) / span) * plotWidth : plotWidth;
  };

  const parts: string[] = [];
  let y = TOP;
  for (const group of chart.groups) {
    const groupTop = y;
    for (const bar of group.bars) {
      const width = bar.value === undefined ? 0 : Math.max(1, scale(bar.value));
      const text = bar.value === undefined ? 'failed' : `${formatValue(bar.value)} ${chart.unit}`;
      parts.push(
        `<text x="${LABEL_WIDTH - 8}" y="${y + BAR_HEIGHT - 5}" text-anchor="end" class="bar-label">${escapeXml(bar.label)}</text>`,
        `<rect x="${LABEL_WIDTH}" y="${y}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${bar.ours ? OURS : BASELINE}"/>`,
        `<text x="${(LABEL_WIDTH + width + 6).toFixed(1)}" y="${y + BAR_HEIGHT - 5}" class="value">${escapeXml(text)}</text>`,
      );
      y += BAR_HEIGHT + BAR_GAP;
    }
    parts.push(
      `<text x="12" y="${groupTop - 4}" class="group">${escapeXml(group.label)}${group.note ? ` — ${escapeXml(group.note)}` : ''}</text>`,
    );
    y += GROUP_GAP + 12;
  }
  const height = y + 10;
  return svgDocument(
    chart.title,
    chart.subtitle && `${chart.subtitle}${chart.log ? ' (log scale)' : ''}`,
    height,
    parts,
  );
}

function svgDocument(
  title: string,
  subtitle: string | undefined,
  height: number,
  parts: readonly string[],
): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${escapeXml(title)}">`,
    '<style>text{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;fill:#1a202c}.title{font-size:16px;font-weight:600}.subtitle{font-size:12px;fill:#4a5568}.group{font-size:13px;font-weight:600}.bar-label,.value{font-size:12px}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="24" class="title">${escapeXml(title)}</text>`,
    subtitle ? `<text x="12" y="42" class="subtitle">${escapeXml(subtitle)}</text>` : '',
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

export interface Segment {
  label: string;
  value: number;
  /** The legend entry (and colour) it belongs to. */
  category: string;
}

export interface StackedBar {
  label: string;
  segments: readonly Segment[];
  ours?: boolean;
}

export interface StackedChart {
  title: string;
  subtitle?: string;
  unit: string;
  bars: readonly StackedBar[];
  /** Categories in legend order, each with its colour. */
  categories: readonly { name: string; color: string }[];
  /** A dashed line at this value, labelled (a target). */
  marker?: { value: number; label: string };
}

/** One horizontal bar per system, split into its processes' shares, with the total at the end. */
export function renderStackedChart(chart: StackedChart): string {
  const totals = chart.bars.map((b) => b.segments.reduce((sum, s) => sum + Math.max(0, s.value), 0));
  const max = Math.max(1, ...totals, chart.marker?.value ?? 0);
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_ROOM;
  const scale = (v: number) => (Math.max(0, v) / max) * plotWidth;
  const color = new Map(chart.categories.map((c) => [c.name, c.color]));
  const parts: string[] = [];
  let legendX = 12;
  for (const c of chart.categories) {
    parts.push(
      `<rect x="${legendX}" y="54" width="10" height="10" fill="${c.color}"/>`,
      `<text x="${legendX + 14}" y="63" class="bar-label">${escapeXml(c.name)}</text>`,
    );
    legendX += 24 + c.name.length * 7;
  }
  let y = TOP;
  chart.bars.forEach((bar, i) => {
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + BAR_HEIGHT - 5}" text-anchor="end" class="${bar.ours ? 'group' : 'bar-label'}">${escapeXml(bar.label)}</text>`,
    );
    let x = LABEL_WIDTH;
    for (const s of bar.segments) {
      const width = scale(s.value);
      if (width <= 0) continue;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${color.get(s.category) ?? BASELINE}" stroke="#ffffff" stroke-width="1"><title>${escapeXml(`${s.label}: ${formatValue(s.value)} ${chart.unit}`)}</title></rect>`,
      );
      x += width;
    }
    parts.push(
      `<text x="${(x + 6).toFixed(1)}" y="${y + BAR_HEIGHT - 5}" class="value">${escapeXml(`${formatValue(totals[i] ?? 0)} ${chart.unit}`)}</text>`,
    );
    y += BAR_HEIGHT + BAR_GAP + 6;
  });
  if (chart.marker) {
    const x = LABEL_WIDTH + scale(chart.marker.value);
    parts.push(
      `<line x1="${x.toFixed(1)}" y1="${TOP - 6}" x2="${x.toFixed(1)}" y2="${y}" stroke="#c53030" stroke-dasharray="4 3"/>`,
      `<text x="${x.toFixed(1)}" y="${y + 12}" text-anchor="middle" class="bar-label">${escapeXml(chart.marker.label)}</text>`,
    );
    y += 16;
  }
  const height = y + 10;
  return svgDocument(chart.title, chart.subtitle, height, parts);
}
