// Generated HTTP requests for the producer's API (fast-check). A case is data with placeholders
// (`real` task ids, the `valid` token) that the runner resolves against the live system, so cases
// stay reproducible from the seed while still reaching deep code with a real task and a real token.
import fc from 'fast-check';

export const ROUTES = [
  { method: 'POST', path: '/api/v1/create-task' },
  { method: 'GET', path: '/api/v1/get-task-data' },
  { method: 'PUT', path: '/api/v1/update-task-status' },
  { method: 'PUT', path: '/api/v1/update-task-statuses' },
  { method: 'POST', path: '/api/v1/redrive-task' },
  { method: 'GET', path: '/health/live' },
  { method: 'GET', path: '/health/ready' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/docs/json' },
] as const;

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'] as const;

/** A value the runner fills in: a real task's id, a fresh UUID, or literal text. */
export type IdChoice = { $id: 'real'; index: number } | { $id: 'random' } | { $id: 'raw'; value: string };
export type TokenChoice = 'valid' | 'none' | 'wrong' | 'valid-lowercase-scheme' | { raw: string };

export type Json = null | boolean | number | string | IdChoice | Json[] | { [key: string]: Json };

export type BodyChoice =
  | { kind: 'none' }
  | { kind: 'json'; value: Json }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: number[] }
  | { kind: 'large'; size: number };

export interface FuzzCase {
  method: string;
  path: string;
  query: [string, string | IdChoice][];
  token: TokenChoice;
  contentType: string | undefined;
  body: BodyChoice;
  idempotencyKey: string | undefined;
}

/** Strings a careless service trips on: control characters, lone surrogates, SQL, format strings. */
export const NASTY_STRINGS = [
  '',
  ' ',
  '   \t\n ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\ud83d\ude00\u200b\u202e\u0301',
  '\uffff\ufeff',
  "'; DROP TABLE tasks; --",
  "' OR '1'='1",
  '$1',
  '%s%s%s%n',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template-injection probe, literally
  '{{7*7}}${7*7}',
  '../../../../etc/passwd',
  '<script>alert(1)</script>',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  '-1',
  '1e309',
  'NaN',
  '9007199254740993',
] as const;

const nasty = fc.constantFrom(...NASTY_STRINGS);

/** Short odd strings: the bulk of every field. */
export const fuzzString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: nasty },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(nasty, fc.string({ unit: 'binary', maxLength: 10 })).map(([a, b]) => `${a}${b}${a}`),
  },
);

/** Around the 10,000-code-point text limit (a 2-byte character, so the byte count differs). */
const longString = fc.constantFrom(9_999, 10_000, 10_001, 40_000).map((n) => 'é'.repeat(n));

/** Text fields: odd strings, sometimes right at or past the length limit. */
const textString: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fuzzString },
  { weight: 1, arbitrary: longString },
);

/** Present in one draw out of `oneIn`. */
const sometimes = <T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const idChoice: fc.Arbitrary<IdChoice> = fc.oneof(
  { weight: 5, arbitrary: fc.nat({ max: 1_000 }).map((index) => ({ $id: 'real' as const, index })) },
  { weight: 2, arbitrary: fc.constant({ $id: 'random' as const }) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        fuzzString,
        fc.uuid({ version: [1, 4, 7] }),
        fc.constantFrom(
          '00000000-0000-0000-0000-000000000000',
          'ffffffff-ffff-ffff-ffff-ffffffffffff',
          '123e4567-e89b-12d3-a456-42661417400',
          '123e4567e89b12d3a456426614174000',
          '{123e4567-e89b-12d3-a456-426614174000}',
          'urn:uuid:123e4567-e89b-12d3-a456-426614174000',
        ),
      )
      .map((value) => ({ $id: 'raw' as const, value })),
  },
);

const scalar: fc.Arbitrary<Json> = fc.oneof(
  fuzzString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(-1, 0, 1, 2, 2 ** 31, 2 ** 53, -(2 ** 31), 1.5),
);
const anyJson: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(fuzzString, scalar, { maxKeys: 3 }) },
);

/** A field: usually a plausible value, sometimes the wrong type, sometimes absent (undefined). */
const field = (plausible: fc.Arbitrary<Json>) =>
  fc.oneof(
    { weight: 8, arbitrary: plausible },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

const withExtras = (base: fc.Arbitrary<Record<string, Json | undefined>>) =>
  fc.tuple(base, sometimes(fc.dictionary(fuzzString, scalar, { maxKeys: 2 }), 5)).map(([b, extra]) => {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries({ ...b, ...(extra ?? {}) })) if (v !== undefined) out[k] = v;
    return out;
  });

// Valid values four times out of five, so that whole requests are often valid and reach the database.
const mostlyValid = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: invalid });
const priority = mostlyValid(fc.constantFrom('high', 'medium', 'low'), fc.constantFrom('HIGH', 'urgent', ''));
const taskStatus = mostlyValid(
  fc.constantFrom('success', 'error'),
  fc.constantFrom('waiting', 'sent', 'SUCCESS', 'done', ''),
);
const attempt = mostlyValid(fc.integer({ min: 0, max: 3 }), fc.constantFrom(-1, 2 ** 31, 1.5, 2 ** 53 + 2));

const createBody = withExtras(fc.record({ text: field(textString), priority: field(priority) }));
const report = withExtras(
  fc.record({
    taskId: field(idChoice),
    taskStatus: field(taskStatus),
    attempt: field(attempt),
    error: field(
      fc.oneof(
        fuzzString,
        fc.constantFrom(2_000, 2_001).map((n) => 'e'.repeat(n)),
      ),
    ),
  }),
);
const batchBody: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.array(report, { maxLength: 6 }).map((reports): Json => ({ reports })) },
  { weight: 1, arbitrary: fc.constant<Json>({ reports: [] }) },
  { weight: 1, arbitrary: report.map((r): Json => ({ reports: Array.from({ length: 1_001 }, () => r) })) },
  { weight: 1, arbitrary: anyJson },
);

const none: fc.Arbitrary<BodyChoice> = fc.constant({ kind: 'none' });

const jsonBody = (value: fc.Arbitrary<Json>): fc.Arbitrary<BodyChoice> =>
  value.map((v): BodyChoice => ({ kind: 'json', value: v }));

const brokenBody: fc.Arbitrary<BodyChoice> = fc.oneof(
  fc
    .constantFrom(
      '{',
      '{"text": "a",}',
      '{"text": \'a\'}',
      '[1, 2',
      'nul',
      '{"text": "\\ud800"}',
      '"just a string"',
    )
    .map((text): BodyChoice => ({ kind: 'text', text })),
  fc
    .constantFrom([0xff, 0xfe, 0xfd], [0x7b, 0x22, 0x74, 0xc3, 0x28, 0x22, 0x7d], [0x00, 0x00, 0x00])
    .map((bytes): BodyChoice => ({ kind: 'bytes', bytes: [...bytes] })),
  fc.constantFrom(200 * 1024, 2 * 1024 * 1024).map((size): BodyChoice => ({ kind: 'large', size })),
  none,
);

const contentTypes = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/problem+json',
      'application/xml',
      'APPLICATION/JSON',
      '',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const token: fc.Arbitrary<TokenChoice> = fc.oneof(
  { weight: 5, arbitrary: fc.constant('valid' as const) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('none' as const, 'wrong' as const, 'valid-lowercase-scheme' as const),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'Bearer',
        'Bearer ',
        'Basic dXNlcjpwYXNz',
        'Bearer a b',
        `Bearer ${'x'.repeat(9000)}`,
        'Token abc',
      )
      .map((raw) => ({ raw })),
  },
);

// A huge query string is rare: past ~16 KB of headers Node's parser answers 431 before any route.
const queryValue = fc.oneof(
  { weight: 10, arbitrary: idChoice },
  { weight: 10, arbitrary: fuzzString },
  { weight: 1, arbitrary: longString },
);
const extraQuery = sometimes(
  fc.array(fc.tuple(fuzzString, queryValue), { minLength: 1, maxLength: 2 }),
  4,
).map((q) => q ?? []);

const statusQuery: fc.Arbitrary<[string, string | IdChoice][]> = fc
  .record({ taskId: field(idChoice), taskStatus: field(taskStatus), attempt: field(attempt) })
  .map((q) =>
    Object.entries(q)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => [
        k,
        typeof v === 'object' && v !== null && '$id' in v
          ? (v as IdChoice)
          : typeof v === 'object'
            ? JSON.stringify(v)
            : String(v),
      ]),
  ) as fc.Arbitrary<[string, string | IdChoice][]>;

interface Shape {
  route: (typeof ROUTES)[number];
  query: fc.Arbitrary<[string, string | IdChoice][]>;
  body: fc.Arbitrary<BodyChoice>;
}

const noQuery: fc.Arbitrary<[string, string | IdChoice][]> = fc.constant([]);
/** Usually one taskId (so requests reach the database), sometimes none or two. */
const taskIdQuery: fc.Arbitrary<[string, string | IdChoice][]> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .oneof({ weight: 3, arbitrary: idChoice }, { weight: 1, arbitrary: queryValue })
      .map((v): [string, string | IdChoice][] => [['taskId', v]]),
  },
  { weight: 2, arbitrary: fc.array(fc.tuple(fc.constant('taskId'), queryValue), { maxLength: 2 }) },
);

const shapes: Shape[] = [
  { route: ROUTES[0], query: noQuery, body: jsonBody(createBody) },
  {
    route: ROUTES[1],
    query: taskIdQuery,
    body: none,
  },
  {
    route: ROUTES[2],
    // Query alone, body alone, or both (which must agree): the route accepts all three.
    query: fc.oneof(statusQuery, noQuery),
    body: fc.oneof(jsonBody(report), none),
  },
  { route: ROUTES[3], query: noQuery, body: jsonBody(batchBody) },
  {
    route: ROUTES[4],
    query: taskIdQuery,
    body: none,
  },
  ...ROUTES.slice(5).map((route): Shape => ({ route, query: noQuery, body: none })),
];

const shaped: fc.Arbitrary<FuzzCase> = fc.oneof(
  ...shapes.map((s) =>
    fc
      .record({
        query: fc.tuple(s.query, extraQuery).map(([q, extra]) => [...q, ...extra]),
        body: fc.oneof({ weight: 6, arbitrary: s.body }, { weight: 1, arbitrary: brokenBody }),
        token,
        contentType: contentTypes,
        idempotencyKey: sometimes(fc.oneof(fc.uuid(), fc.constantFrom('k', 'same-key', 'x'.repeat(300))), 3),
        wrongMethod: sometimes(fc.constantFrom(...METHODS), 10),
      })
      .map((c) => ({
        method: c.wrongMethod ?? s.route.method,
        path: s.route.path,
        query: c.query,
        token: c.token,
        contentType: c.body.kind === 'none' ? undefined : c.contentType,
        body: c.body,
        idempotencyKey: c.idempotencyKey ?? undefined,
      })),
  ),
);

const strangePath = fc
  .oneof(
    fc.constantFrom(
      '/',
      '/api',
      '/api/v1',
      '/api/v1/create-task/',
      '/API/V1/CREATE-TASK',
      '/api/v1/../../etc/passwd',
      '/api/v1/%00',
      '/api/v1/get-task-data%2F',
      '//api//v1//get-task-data',
      '/docs',
      '/docs/static/../../package.json',
      '/console',
      '/console/../package.json',
      '/console/app.js%00',
    ),
    fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map((s) => `/api/v1/${encodeURIComponent(s)}`),
  )
  .chain((path) =>
    fc.record({
      method: fc.constantFrom(...METHODS),
      path: fc.constant(path),
      query: extraQuery,
      token,
      contentType: contentTypes,
      body: fc.oneof(jsonBody(anyJson), brokenBody),
      idempotencyKey: fc.constant(undefined),
    }),
  )
  .map((c) => ({ ...c, contentType: c.body.kind === 'none' ? undefined : c.contentType }));

// Well-formed requests with the valid token and real ids: the part that reaches the repository and
// the status rules (transitions, fencing, redrive, idempotency) with odd but legal values.
const realId = fc.nat({ max: 1_000 }).map((index): IdChoice => ({ $id: 'real', index }));
const cleanReport = fc
  .record({
    taskId: fc.oneof(
      { weight: 4, arbitrary: realId },
      { weight: 1, arbitrary: fc.constant<IdChoice>({ $id: 'random' }) },
    ),
    taskStatus: fc.constantFrom('success', 'error'),
    attempt: sometimes(fc.integer({ min: 1, max: 3 }), 3),
    error: sometimes(fuzzString, 2),
  })
  .map(
    (r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Record<string, Json>,
  );
type CleanCase = Pick<FuzzCase, 'method' | 'path' | 'query' | 'body'>;
const byId = (id: IdChoice): [string, string | IdChoice][] => [['taskId', id]];
const cleanBodies: fc.Arbitrary<CleanCase> = fc.oneof(
  fc.record({ text: fuzzString.filter((t) => t.trim().length > 0), priority }).map(
    (value): CleanCase => ({
      method: 'POST',
      path: ROUTES[0].path,
      query: [],
      body: { kind: 'json', value },
    }),
  ),
  realId.map(
    (id): CleanCase => ({ method: 'GET', path: ROUTES[1].path, query: byId(id), body: { kind: 'none' } }),
  ),
  cleanReport.map(
    (r): CleanCase => ({
      method: 'PUT',
      path: ROUTES[2].path,
      query: Object.entries(r).map(([k, v]): [string, string | IdChoice] => [
        k,
        typeof v === 'object' && v !== null ? (v as IdChoice) : String(v),
      ]),
      body: { kind: 'none' },
    }),
  ),
  cleanReport.map(
    (value): CleanCase => ({ method: 'PUT', path: ROUTES[2].path, query: [], body: { kind: 'json', value } }),
  ),
  fc.array(cleanReport, { minLength: 1, maxLength: 8 }).map(
    (reports): CleanCase => ({
      method: 'PUT',
      path: ROUTES[3].path,
      query: [],
      body: { kind: 'json', value: { reports } },
    }),
  ),
  realId.map(
    (id): CleanCase => ({ method: 'POST', path: ROUTES[4].path, query: byId(id), body: { kind: 'none' } }),
  ),
);
const clean: fc.Arbitrary<FuzzCase> = fc
  .tuple(cleanBodies, sometimes(fc.uuid(), 3))
  .map(([c, idempotencyKey]) => ({
    ...c,
    token: 'valid' as const,
    contentType: c.body.kind === 'none' ? undefined : 'application/json',
    idempotencyKey: c.path === ROUTES[0].path ? idempotencyKey : undefined,
  }));

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 6, arbitrary: shaped },
  { weight: 3, arbitrary: clean },
  { weight: 1, arbitrary: strangePath },
);

export function generateCases(count: number, seed: number): FuzzCase[] {
  return fc.sample(fuzzCase, { numRuns: count, seed });
}
