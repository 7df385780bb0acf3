// The OpenAPI document a real producer serves at /docs/json: clean under Redocly's recommended rules,
// and the contract check that http-api.test.ts runs over every response it gets does catch a response
// the document does not describe.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createContractChecker, type OpenApiDocument } from '../support/openapi-contract.js';
import { type Exchange, startTestProducer, type TestProducer } from '../support/producer.js';

const REDOCLY_CLI = join(
  createRequire(import.meta.url).resolve('@redocly/cli/package.json'),
  '../bin/cli.js',
);

let producer: TestProducer;
let document: OpenApiDocument;

beforeAll(async () => {
  producer = await startTestProducer('openapi', { broker: 'unreachable' });
  const served = await producer.http<OpenApiDocument>('GET', '/docs/json');
  expect(served.status).toBe(200);
  document = served.body;
});
afterAll(async () => {
  await producer?.close();
});

interface LintReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
}

describe('the served OpenAPI document', () => {
  test('lints clean with Redocly recommended rules: no error, no warning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify(document));
      // Exit code 1 when there are errors: the report on stdout says which, either way.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [REDOCLY_CLI, 'lint', '--extends', 'recommended', '--format', 'json', file],
        { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
      ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
      const report = JSON.parse(stdout) as LintReport;
      const problems = report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
      expect(problems).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('every operation answers the parser-level and availability problems, and says who may call it', () => {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const codes = Object.keys(operation.responses ?? {});
        expect(codes, `${method} ${path}`).toEqual(
          expect.arrayContaining(['400', '408', '431', '500', '503']),
        );
        expect((operation as { security?: unknown }).security, `${method} ${path}`).toBeDefined();
      }
    }
  });
});

describe('the contract check', () => {
  const exchange = (overrides: Partial<Exchange>): Exchange => ({
    method: 'GET',
    path: '/api/v1/get-task-data',
    status: 404,
    headers: { 'content-type': 'application/problem+json', 'x-request-id': randomUUID() },
    text: JSON.stringify({ type: 'urn:x', title: 'Not found', status: 404, detail: 'no such task' }),
    ...overrides,
  });

  test('passes a described response and reports each kind of departure', () => {
    const { violations } = createContractChecker(document);
    expect(violations(exchange({}))).toEqual([]);
    expect(violations(exchange({ status: 418 }))).toEqual(['status 418 is not documented']);
    expect(violations(exchange({ headers: { 'content-type': 'text/html', 'x-request-id': 'r' } }))).toEqual([
      'text/html is not documented',
    ]);
    expect(violations(exchange({ text: JSON.stringify({ title: 'Not found' }) })).join()).toMatch(
      /must have required property 'type'/,
    );
    expect(violations(exchange({ headers: { 'content-type': 'application/problem+json' } }))).toEqual([
      'no x-request-id',
    ]);
    // A method the path does not take: 405 with exactly the documented methods in Allow.
    const notAllowed = {
      method: 'DELETE',
      status: 405,
      text: JSON.stringify({ type: 'u', title: 't', status: 405, detail: 'd' }),
    };
    expect(
      violations(exchange({ ...notAllowed, headers: { ...exchange({}).headers, allow: 'GET, HEAD' } })),
    ).toEqual([]);
    expect(
      violations(exchange({ ...notAllowed, headers: { ...exchange({}).headers, allow: 'GET, POST' } })),
    ).toEqual(['Allow: GET, POST, documented methods: GET, HEAD']);
    // A path the document does not list must be the not-found handler's 404.
    expect(violations(exchange({ path: '/nothing', status: 200 }))).toEqual(['status 200, expected 404']);
  });
});
