// The throughput of the last hour as inline SVG: tasks created and finished per minute, two lines on
// a fixed-size canvas (the viewBox scales it to the column), so a new minute never moves the page.
import { formatCount, s } from './dom.js';

const WIDTH = 600;
const HEIGHT = 180;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

/** A round axis maximum at or above `value`: 1, 2, 5 × 10^n. */
function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** Replaces the chart in `container` with one drawn from `throughput` (oldest minute first). */
export function renderThroughput(container, throughput) {
  const points = Array.isArray(throughput) ? throughput : [];
  const top = niceCeiling(Math.max(0, ...points.flatMap((p) => [p.created, p.finished])));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length <= 1 ? plotW : (i * plotW) / (points.length - 1));
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const line = (key) => points.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  const created = points.reduce((sum, p) => sum + p.created, 0);
  const finished = points.reduce((sum, p) => sum + p.finished, 0);
  const summary =
    `Last ${points.length} minutes: ${formatCount(created)} created, ${formatCount(finished)} finished; ` +
    `peak ${formatCount(top)} per minute on the scale`;

  const grid = [0, top / 2, top].map((v) =>
    s(
      'g',
      { class: 'grid' },
      s('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      s('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatCount(v)),
    ),
  );
  const ticks = [
    [0, `-${points.length} min`],
    [Math.floor((points.length - 1) / 2), `-${Math.ceil(points.length / 2)} min`],
    [points.length - 1, 'now'],
  ].map(([i, label], n) =>
    s('text', { class: 'tick', x: x(i), y: HEIGHT - 6, 'text-anchor': ['start', 'middle', 'end'][n] }, label),
  );

  const svg = s(
    'svg',
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: 'img',
      'aria-label': summary,
      class: 'chart',
    },
    s('title', {}, summary),
    ...grid,
    ...(points.length > 0 ? ticks : []),
    s('polyline', { class: 'created', points: line('created') }),
    s('polyline', { class: 'finished', points: line('finished') }),
  );
  container.replaceChildren(svg);
  return { created, finished };
}
