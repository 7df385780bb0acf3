// Counting tasks by status and drawing one progress line (pure; unit-tested).
import type { TaskStatus } from './api-client.js';

export interface Tally {
  total: number;
  waiting: number;
  sent: number;
  success: number;
  error: number;
  /** Not read yet, or the last read failed (the producer is restarting, say). */
  unknown: number;
}

export function tally(statuses: Iterable<TaskStatus | undefined>, total: number): Tally {
  const t: Tally = { total, waiting: 0, sent: 0, success: 0, error: 0, unknown: 0 };
  let seen = 0;
  for (const status of statuses) {
    seen += 1;
    if (status === undefined) t.unknown += 1;
    else t[status] += 1;
  }
  t.unknown += total - seen;
  return t;
}

export const isTerminal = (status: TaskStatus | undefined): boolean =>
  status === 'success' || status === 'error';

export function renderProgress(t: Tally, elapsedMs: number, width = 30): string {
  const done = t.success + t.error;
  const filled = t.total === 0 ? width : Math.floor((done / t.total) * width);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  const percent = t.total === 0 ? 100 : Math.floor((done / t.total) * 100);
  const parts = [
    `[${bar}] ${String(percent).padStart(3)}%`,
    `${done}/${t.total} done`,
    `success ${t.success}`,
    `error ${t.error}`,
    `sent ${t.sent}`,
    `waiting ${t.waiting}`,
  ];
  if (t.unknown > 0) parts.push(`unknown ${t.unknown}`);
  parts.push(`${(elapsedMs / 1000).toFixed(1)} s`);
  return parts.join('  ');
}
