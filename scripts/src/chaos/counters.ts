// Counters scraped from the services' Prometheus endpoints during the run. A process that is killed
// restarts its counters at zero, so the accumulator adds the increase since the previous scrape and
// treats a drop as a restart; increments between the last scrape and a SIGKILL are lost (at most
// one scrape interval's worth), so these figures are lower bounds.
import { request } from 'undici';

/** Parses `name{labels} value` lines of counters (`*_total`); returns series key → value. */
export function parseCounters(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*_total)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (Number.isFinite(value)) out.set(`${match[1]}${match[2] ?? ''}`, value);
  }
  return out;
}

export interface CounterAccumulator {
  add(source: string, sample: Map<string, number>): void;
  /** Sum over sources and process lifetimes, by series key. */
  totals(): Map<string, number>;
}

export function createCounterAccumulator(): CounterAccumulator {
  const last = new Map<string, number>();
  const totals = new Map<string, number>();
  return {
    add(source, sample) {
      for (const [series, value] of sample) {
        const key = `${source}\u0000${series}`;
        const previous = last.get(key) ?? 0;
        const increase = value >= previous ? value - previous : value;
        last.set(key, value);
        totals.set(series, (totals.get(series) ?? 0) + increase);
      }
    },
    totals: () => totals,
  };
}

/** Sum of a counter over every label set whose labels contain `labelFilter`. */
export function counterSum(totals: Map<string, number>, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const [series, value] of totals) {
    if ((series === name || series.startsWith(`${name}{`)) && series.includes(labelFilter)) sum += value;
  }
  return sum;
}

export interface Scraper {
  accumulator: CounterAccumulator;
  stop(): Promise<void>;
}

/**
 * `targets()` names each endpoint by its current process (e.g. `producer:<pid>`), so a restarted
 * process's counters start a new series even when they climbed past the old one's before the scrape.
 */
export function startScraper(targets: () => Record<string, string>, intervalMs = 1_000): Scraper {
  const accumulator = createCounterAccumulator();
  let stopped = false;
  const scrapeAll = () =>
    Promise.all(
      Object.entries(targets()).map(async ([source, url]) => {
        try {
          const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
          const text = await res.body.text();
          if (res.statusCode === 200) accumulator.add(source, parseCounters(text));
        } catch {
          // the service is down right now; its next process starts from zero
        }
      }),
    );
  const loop = (async () => {
    while (!stopped) {
      await scrapeAll();
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  let stopping: Promise<void> | undefined;
  return {
    accumulator,
    stop() {
      stopped = true;
      stopping ??= loop.then(async () => {
        await scrapeAll();
      });
      return stopping;
    },
  };
}
