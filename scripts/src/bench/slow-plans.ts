// auto_explain's entries in a PostgreSQL server log, grouped by statement: how often each ran longer
// than the threshold, and the plan of its slowest run (profile-run.ts --slow-plans=MS). Pure.

export interface SlowStatement {
  /** The statement's text, whitespace collapsed. */
  query: string;
  runs: number;
  slowestMs: number;
  /** The slowest run's plan, as auto_explain logged it. */
  plan: string;
}

/** auto_explain's entries in a server log: one per run slower than its threshold. */
export function slowPlans(log: string): SlowStatement[] {
  const byQuery = new Map<string, { runs: number; slowestMs: number; plan: string }>();
  // An entry is its "duration: … plan:" line and the tab-indented lines after it: the statement
  // ("Query Text: …"), then the plan, whose first line is the first with a cost or a timing.
  for (const entry of log.split(/\n(?=\S)/)) {
    const match = /duration: ([\d.]+) ms {2}plan:\n([\s\S]*)/.exec(entry);
    if (!match) continue;
    const lines = (match[2] ?? '').split('\n');
    const planStart = lines.findIndex((line) => /\((cost|actual)[= ]/.test(line));
    if (planStart < 0) continue;
    const query = lines
      .slice(0, planStart)
      .join(' ')
      .replace(/^\s*Query Text:/, '')
      .replace(/\s+/g, ' ')
      .trim();
    const seen = byQuery.get(query) ?? { runs: 0, slowestMs: 0, plan: '' };
    seen.runs += 1;
    const ms = Number(match[1]);
    if (ms > seen.slowestMs) {
      seen.slowestMs = ms;
      seen.plan = lines.slice(planStart).join('\n').trimEnd();
    }
    byQuery.set(query, seen);
  }
  return [...byQuery].map(([query, seen]) => ({ query, ...seen })).sort((a, b) => b.runs - a.runs);
}
