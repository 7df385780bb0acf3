// Sends generated requests one at a time to a live producer and checks every answer: no 5xx, a
// problem+json body without stack traces or SQL for every error, an x-request-id on every response,
// and — with a digest of the tasks table after each request — nothing changed by a rejected request.
import type { Sql } from 'postgres';
import { Agent, request } from 'undici';
import type { BodyChoice, FuzzCase, IdChoice, Json } from './arbitraries.js';

export interface HttpFuzzTarget {
  baseUrl: string;
  token: string;
  sql: Sql;
  /** Ids of real tasks; tasks created by the fuzz are added as they appear. */
  taskIds: string[];
  /** True while the producer process runs. */
  alive: () => boolean;
}

export interface HttpFinding {
  index: number;
  /**
   * true: a broken promise (5xx, no answer, a crash, internals leaked, a rejected request that
   * changed data). false: a departure from the response format of PROTOCOL §4 (problem+json,
   * x-request-id) that harms nobody's data.
   */
  severe: boolean;
  problem: string;
  request: string;
  status?: number;
  body?: string;
}

export interface HttpFuzzResult {
  requests: number;
  byStatus: Record<string, number>;
  byRoute: Record<string, Record<string, number>>;
  serverErrors: number;
  findings: HttpFinding[];
  /** Requests undici refused to send (a header value it considers invalid): not the server's fault. */
  unsendable: number;
  elapsedMs: number;
}

/** Signs of internals in an error body: stack frames, source paths, PostgreSQL's own messages. */
const LEAK_PATTERNS: readonly RegExp[] = [
  /\n\s+at \S/,
  /\.(ts|js):\d+:\d+/,
  /node_modules/,
  /\/work\/|\/home\/|\/usr\/src\//,
  /syntax error at or near/i,
  /invalid input syntax for type/i,
  /violates (unique|check|not-null|foreign key) constraint/i,
  /relation "[^"]+" does not exist/i,
  /\bSELECT\b[\s\S]*\bFROM\b\s+tasks/i,
  /\bUPDATE\s+tasks\b/i,
  /\bINSERT\s+INTO\s+tasks\b/i,
];

export function findLeak(body: string): RegExp | undefined {
  return LEAK_PATTERNS.find((p) => p.test(body));
}

/** Percent-encodes any string, lone surrogates included (encodeURIComponent throws on those). */
export function percentEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export async function tableDigest(sql: Sql): Promise<string> {
  const [row] = await sql<{ n: number; digest: string | null }[]>`
    select count(*)::int as n, md5(string_agg(t::text, '|' order by t.id)) as digest from tasks t`;
  return `${row?.n}:${row?.digest ?? ''}`;
}

let syntheticIds = 0;
/** Unknown but well-formed task ids, deterministic so a run can be repeated. */
const unknownId = () => `00000000-0000-4000-8000-${(++syntheticIds).toString(16).padStart(12, '0')}`;

const isIdChoice = (v: unknown): v is IdChoice => typeof v === 'object' && v !== null && '$id' in v;

function resolveId(choice: IdChoice, ids: readonly string[]): string {
  switch (choice.$id) {
    case 'real':
      return ids.length > 0 ? (ids[choice.index % ids.length] as string) : unknownId();
    case 'random':
      return unknownId();
    case 'raw':
      return choice.value;
  }
}

function resolveJson(value: Json, ids: readonly string[]): unknown {
  if (isIdChoice(value)) return resolveId(value, ids);
  if (Array.isArray(value)) return value.map((v) => resolveJson(v, ids));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveJson(v, ids)]));
  }
  return value;
}

function resolveBody(body: BodyChoice, ids: readonly string[]): string | Buffer | undefined {
  switch (body.kind) {
    case 'none':
      return undefined;
    case 'json':
      return JSON.stringify(resolveJson(body.value, ids));
    case 'text':
      return body.text;
    case 'bytes':
      return Buffer.from(body.bytes);
    case 'large':
      return `{"text":"${'x'.repeat(body.size)}"}`;
  }
}

export interface ResolvedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | Buffer | undefined;
}

export function resolveCase(
  c: FuzzCase,
  target: Pick<HttpFuzzTarget, 'baseUrl' | 'token' | 'taskIds'>,
): ResolvedRequest {
  const query = c.query
    .map(([k, v]) => `${percentEncode(k)}=${percentEncode(isIdChoice(v) ? resolveId(v, target.taskIds) : v)}`)
    .join('&');
  const headers: Record<string, string> = {};
  if (c.token === 'valid') headers.authorization = `Bearer ${target.token}`;
  else if (c.token === 'wrong') headers.authorization = `Bearer ${target.token.slice(0, -1)}x`;
  else if (c.token === 'valid-lowercase-scheme') headers.authorization = `bearer ${target.token}`;
  else if (typeof c.token === 'object') headers.authorization = c.token.raw;
  if (c.contentType !== undefined) headers['content-type'] = c.contentType;
  if (c.idempotencyKey !== undefined) headers['idempotency-key'] = c.idempotencyKey;
  return {
    method: c.method,
    url: `${target.baseUrl}${c.path}${query ? `?${query}` : ''}`,
    headers,
    body: resolveBody(c.body, target.taskIds),
  };
}

export function describeRequest(r: ResolvedRequest): string {
  const body =
    r.body === undefined
      ? ''
      : ` body(${r.body.length}): ${String(r.body).slice(0, 200).replace(/\n/g, '\\n')}`;
  const headers = Object.entries(r.headers)
    .map(([k, v]) => `${k}: ${v.length > 60 ? `${v.slice(0, 60)}…` : v}`)
    .join('; ');
  return `${r.method} ${r.url.length > 300 ? `${r.url.slice(0, 300)}…` : r.url} [${headers}]${body}`;
}

/** Routes that change data: PROTOCOL §4 wants 401 before anything else without the token. */
const PROTECTED_ROUTES: ReadonlySet<string> = new Set([
  'PUT /api/v1/update-task-status',
  'PUT /api/v1/update-task-statuses',
  'POST /api/v1/redrive-task',
]);
// RFC 9110: the auth scheme is case-insensitive, so `bearer <token>` is a valid token too.
const presentsToken = (c: FuzzCase) => c.token === 'valid' || c.token === 'valid-lowercase-scheme';

async function answers(baseUrl: string): Promise<boolean> {
  try {
    const res = await request(`${baseUrl}/health/live`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

const routeLabel = (c: FuzzCase) =>
  `${c.method} ${c.path.startsWith('/api/v1/') || c.path.startsWith('/health') ? c.path : '(other)'}`;

export async function runHttpFuzz(
  cases: readonly FuzzCase[],
  target: HttpFuzzTarget,
  onProgress?: (done: number, result: HttpFuzzResult) => void,
): Promise<HttpFuzzResult> {
  const agent = new Agent({ connections: 1, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const started = Date.now();
  const result: HttpFuzzResult = {
    requests: 0,
    byStatus: {},
    byRoute: {},
    serverErrors: 0,
    findings: [],
    unsendable: 0,
    elapsedMs: 0,
  };
  let digest = await tableDigest(target.sql);
  try {
    for (const [index, c] of cases.entries()) {
      const resolved = resolveCase(c, target);
      const finding = (problem: string, status?: number, body?: string, severe = true) =>
        result.findings.push({
          index,
          severe,
          problem,
          request: describeRequest(resolved),
          ...(status !== undefined ? { status } : {}),
          ...(body !== undefined ? { body: body.slice(0, 500) } : {}),
        });
      let status: number;
      let body: string;
      let headers: Record<string, string | string[] | undefined>;
      try {
        const res = await request(resolved.url, {
          method: resolved.method as 'GET',
          headers: resolved.headers,
          body: resolved.body,
          dispatcher: agent,
        });
        status = res.statusCode;
        headers = res.headers;
        body = await res.body.text();
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (code === 'UND_ERR_INVALID_ARG' || error instanceof TypeError) {
          result.unsendable += 1;
          continue;
        }
        result.requests += 1;
        // A server may answer 413 and close before reading a body past its limit; the client then
        // fails writing the rest. That is no crash if the process still runs and answers.
        const bodyBytes = resolved.body === undefined ? 0 : Buffer.byteLength(resolved.body);
        const earlyClose = bodyBytes > 128 * 1024 && target.alive() && (await answers(target.baseUrl));
        if (earlyClose)
          result.byStatus['reset-after-large-body'] = (result.byStatus['reset-after-large-body'] ?? 0) + 1;
        else finding(`no response: ${code} ${(error as Error).message}`);
        if (!target.alive()) {
          finding('the producer process died');
          break;
        }
        continue;
      }
      result.requests += 1;
      result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
      const route = routeLabel(c);
      result.byRoute[route] ??= {};
      const perRoute = result.byRoute[route] as Record<string, number>;
      perRoute[status] = (perRoute[status] ?? 0) + 1;

      if (PROTECTED_ROUTES.has(`${c.method} ${c.path}`) && status !== 431) {
        // 431 comes from Node's HTTP parser, before any route or hook can run.
        if (!presentsToken(c) && status !== 401)
          finding('a protected route answered without a valid token', status, body);
        if (presentsToken(c) && status === 401) finding('the valid token was refused', status, body);
      }
      if (status >= 500) {
        result.serverErrors += 1;
        finding('5xx', status, body);
      }
      if (!headers['x-request-id']) finding('no x-request-id header', status, undefined, false);
      if (status >= 400 && resolved.method !== 'HEAD') {
        const type = String(headers['content-type'] ?? '');
        if (!type.startsWith('application/problem+json'))
          finding(`error answered as ${type || 'no content type'}`, status, body, false);
        const leak = findLeak(body);
        if (leak) finding(`internals in the error body (${leak})`, status, body);
      }
      if (status === 201 && c.path === '/api/v1/create-task') {
        try {
          target.taskIds.push((JSON.parse(body) as { taskId: string }).taskId);
        } catch {
          finding('201 without a task body', status, body);
        }
      }
      const next = await tableDigest(target.sql);
      if (status >= 400 && next !== digest)
        finding('a rejected request changed the tasks table', status, body);
      digest = next;
      if (index % 250 === 0) onProgress?.(index, result);
    }
  } finally {
    await agent.close();
  }
  result.elapsedMs = Date.now() - started;
  onProgress?.(cases.length, result);
  return result;
}
