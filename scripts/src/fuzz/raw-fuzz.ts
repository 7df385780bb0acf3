// Sends raw cases one connection at a time to every listening port and checks each answer: a status
// line at all (no stall, no silent close), never a 5xx, problem+json for every error, nothing leaked,
// the tasks table unchanged by a rejected request, and the process still running afterwards.

import { sendRaw } from '@task-pipeline/testkit/raw-http';
import type { Sql } from 'postgres';
import type { HttpFinding } from './http-fuzz.js';
import { findLeak, tableDigest } from './http-fuzz.js';
import { type RawCase, type RawService, rawBytes } from './raw-arbitraries.js';

export interface RawPort {
  port: number;
  /** True while the process behind the port runs. */
  alive: () => boolean;
}

export interface RawFuzzTarget {
  host: string;
  token: string;
  ports: Record<RawService, RawPort>;
  /** The producer's database: a rejected request must not change its tasks table. */
  sql: Sql;
}

export interface RawFuzzResult {
  requests: number;
  /** Answers by service, then by status (or how the connection ended without one). */
  byService: Record<string, Record<string, number>>;
  findings: HttpFinding[];
  /** Services whose process was found dead; the run stops at the first. */
  died: RawService[];
  elapsedMs: number;
}

const ANSWER_TIMEOUT_MS = 10_000;

async function waitWhile(condition: () => boolean, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; condition() && Date.now() < deadline; )
    await new Promise((r) => setTimeout(r, 50));
}

/** Printable form of a case: control and non-ASCII bytes escaped, long runs shortened. */
export function describeRaw(bytes: Buffer): string {
  const shown = bytes
    .subarray(0, 240)
    .toString('latin1')
    .replace(/[^\x20-\x7e]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/(.)\1{15,}/g, (run, ch: string) => `[${ch} x${run.length}]`);
  return `${shown}${bytes.length > 240 ? `… (${bytes.length} bytes)` : ''}`;
}

export async function runRawFuzz(
  cases: readonly RawCase[],
  target: RawFuzzTarget,
  onProgress?: (done: number, result: RawFuzzResult) => void,
): Promise<RawFuzzResult> {
  const started = Date.now();
  const result: RawFuzzResult = { requests: 0, byService: {}, findings: [], died: [], elapsedMs: 0 };
  let digest = await tableDigest(target.sql);
  for (const [index, c] of cases.entries()) {
    const port = target.ports[c.service];
    const bytes = rawBytes(c, target.token);
    const finding = (problem: string, status?: number, body?: string, severe = true) =>
      result.findings.push({
        index,
        severe,
        problem: `${c.service}: ${problem}`,
        request: `[${c.label}] ${describeRaw(bytes)}`,
        ...(status !== undefined ? { status } : {}),
        ...(body !== undefined ? { body: body.slice(0, 500) } : {}),
      });
    const reply = await sendRaw(target.host, port.port, bytes, {
      timeoutMs: ANSWER_TIMEOUT_MS,
      endAfterWrite: !c.whole,
    });
    result.requests += 1;
    result.byService[c.service] ??= {};
    const counts = result.byService[c.service] as Record<string, number>;
    const key = reply.status === undefined ? `no answer (${reply.ending})` : String(reply.status);
    counts[key] = (counts[key] ?? 0) + 1;

    // A process that died of this request may not have been reaped yet: give its exit a moment to show.
    if (reply.status === undefined) await waitWhile(port.alive, 2_000);
    if (!port.alive()) {
      finding('the process died');
      result.died.push(c.service);
      break;
    }
    const body = reply.body.toString('utf8');
    if (reply.status === undefined) {
      if (reply.ending === 'timeout') finding(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`);
      // After a half-close Node's server drops a response it was still computing (the request may
      // even have been whole): not an answer, but nothing broken either. A whole request must get one.
      else finding(`connection ${reply.ending} without an answer`, undefined, undefined, c.whole);
    } else {
      if (reply.status >= 500) finding('5xx', reply.status, body);
      if (reply.status >= 400) {
        const type = reply.headers['content-type'] ?? '';
        if (!type.startsWith('application/problem+json'))
          finding(`error answered as ${type || 'no content type'}`, reply.status, body, false);
        const leak = findLeak(body);
        if (leak) finding(`internals in the error body (${leak})`, reply.status, body);
      }
      if (c.service === 'producer' && !reply.headers['x-request-id'])
        finding('no x-request-id header', reply.status, undefined, false);
    }
    if (c.service === 'producer') {
      const next = await tableDigest(target.sql);
      if (next !== digest && (reply.status === undefined || reply.status >= 400))
        finding('a rejected request changed the tasks table', reply.status, body);
      digest = next;
    }
    if (index % 250 === 0) onProgress?.(index, result);
  }
  result.elapsedMs = Date.now() - started;
  onProgress?.(cases.length, result);
  return result;
}
