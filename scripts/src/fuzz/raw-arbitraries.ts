// Raw bytes for every listening port (fast-check): request lines, headers and bodies as a socket
// carries them, including what no HTTP client library would send. A case is data with one
// placeholder (the valid token) that the runner fills in, so a seed repeats a run exactly.
import fc from 'fast-check';
import { fuzzString, NASTY_STRINGS } from './arbitraries.js';

/** The two kinds of listening port: the producer's API and a consumer's HEALTH_PORT. */
export const RAW_SERVICES = ['producer', 'consumer'] as const;
export type RawService = (typeof RAW_SERVICES)[number];

/** The routes each port serves: generated targets start from these so some reach a handler. */
export const SERVICE_PATHS: Record<RawService, readonly string[]> = {
  producer: [
    '/api/v1/create-task',
    '/api/v1/get-task-data',
    '/api/v1/update-task-status',
    '/api/v1/update-task-statuses',
    '/api/v1/redrive-task',
    '/health/live',
    '/health/ready',
    '/metrics',
    '/docs/json',
  ],
  consumer: ['/health/live', '/health/ready', '/metrics'],
};

/** Text sent as it is (latin1: one character, one byte), or the valid token. */
export type RawSegment = string | { $token: 'valid' };

export interface RawCase {
  service: RawService;
  /** What kind of oddity this is, for counts and reports. */
  label: string;
  segments: RawSegment[];
  /**
   * False when the bytes may not end a whole request (cut short, a body shorter than announced,
   * framing or line breaks that the generator does not control): the runner then half-closes, and a
   * server waiting for more must answer instead.
   */
  whole: boolean;
}

const CRLF = '\r\n';
const request = (line: string, headers: string[] = ['Host: fuzz'], body = ''): string =>
  `${line}${CRLF}${headers.map((h) => `${h}${CRLF}`).join('')}${CRLF}${body}`;

/**
 * Hand-written requests every port must refuse with a 4xx and survive: odd request targets
 * (absolute-form with a bad authority, `*`, bad percent-escapes), huge and binary request lines,
 * odd headers and framing. The listening-ports test sends each to both services; the fuzz starts with them.
 */
export const ODD_REQUESTS: readonly { label: string; bytes: string; whole?: false }[] = [
  { label: 'absolute-form, port not a number', bytes: request('GET http://a:b/ HTTP/1.1') },
  { label: 'absolute-form, port out of range', bytes: request('GET http://a:99999/metrics HTTP/1.1') },
  { label: 'absolute-form, unclosed IPv6 host', bytes: request('GET http://[::1/health/live HTTP/1.1') },
  { label: 'absolute-form, no host', bytes: request('GET http:///health/live HTTP/1.1') },
  { label: 'asterisk-form with OPTIONS', bytes: request('OPTIONS * HTTP/1.1') },
  { label: 'asterisk-form with GET', bytes: request('GET * HTTP/1.1') },
  { label: 'percent-escape not hex', bytes: request('GET /%zz HTTP/1.1') },
  { label: 'percent-escape cut short', bytes: request('GET /health/live% HTTP/1.1') },
  { label: 'percent-escape of a broken UTF-8 sequence', bytes: request('GET /health/%E0%A4%A HTTP/1.1') },
  { label: 'NUL in the target', bytes: request('GET /health/\0live HTTP/1.1') },
  { label: 'target neither a path nor a URL', bytes: request('GET health HTTP/1.1') },
  { label: 'request line of 20 KB', bytes: request(`GET /${'a'.repeat(20_000)} HTTP/1.1`) },
  { label: 'request line of 70 KB', bytes: request(`GET /metrics?${'q'.repeat(70_000)} HTTP/1.1`) },
  { label: 'binary request line', bytes: '\u0000\u0001\u0002\u00ff\u00fe GET \u0080\u0081\r\n\r\n' },
  {
    label: 'TLS ClientHello on a plain port',
    bytes: '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
  },
  { label: 'HTTP/2 preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
  { label: 'unknown HTTP version', bytes: request('GET /health/live HTTP/9.9') },
  { label: 'unknown method', bytes: request('BREW /health/live HTTP/1.1') },
  { label: 'CONNECT', bytes: request('CONNECT example.com:443 HTTP/1.1', ['Host: example.com:443']) },
  { label: 'HTTP/1.1 without Host', bytes: request('GET /health/live HTTP/1.1', []) },
  {
    label: 'control character in a header value',
    bytes: request('GET /health/live HTTP/1.1', ['Host: fuzz', 'X-A: \u0001']),
  },
  { label: 'space before the colon', bytes: request('GET /health/live HTTP/1.1', ['Host: fuzz', 'X-A : b']) },
  {
    label: 'obsolete line folding',
    bytes: request('GET /health/live HTTP/1.1', ['Host: fuzz', 'X-A: b', ' folded']),
  },
  {
    label: 'header of 20 KB',
    bytes: request('GET /health/live HTTP/1.1', ['Host: fuzz', `X-A: ${'b'.repeat(20_000)}`]),
  },
  {
    label: 'negative Content-Length',
    bytes: request('POST /health/live HTTP/1.1', ['Host: fuzz', 'Content-Length: -1']),
  },
  {
    label: 'Content-Length and Transfer-Encoding',
    bytes: request(
      'POST /health/live HTTP/1.1',
      ['Host: fuzz', 'Content-Length: 3', 'Transfer-Encoding: chunked'],
      'abc',
    ),
  },
  {
    label: 'chunked body with a bad chunk size',
    bytes: request(
      'POST /health/live HTTP/1.1',
      ['Host: fuzz', 'Transfer-Encoding: chunked'],
      'zz\r\nabc\r\n0\r\n\r\n',
    ),
  },
  {
    label: 'Expect that cannot be met',
    bytes: request('GET /health/live HTTP/1.1', ['Host: fuzz', 'Expect: banana']),
  },
  { label: 'request cut off in the headers', bytes: 'GET /health/live HTTP/1.1\r\nHost: fu', whole: false },
];

const text = (s: string): RawSegment[] => [s];

const pathOf = (service: RawService) => fc.constantFrom(...SERVICE_PATHS[service]);

/** Bytes 0–255 as latin1 text: anything a socket can carry. */
const binary = (maxLength: number) =>
  fc.uint8Array({ minLength: 1, maxLength }).map((bytes) => Buffer.from(bytes).toString('latin1'));

/** A percent-escape that may be broken: `%zz`, `%E`, `%`, or a stray byte sequence. */
const percentEscape = fc.oneof(
  fc.constantFrom('%', '%z', '%zz', '%E0', '%E0%A4', '%ff%fe', '%00', '%%', '%2', '%C3%28'),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength: 3 }).map((h) => `%${h}`),
);

const authority = fc.oneof(
  fc.constantFrom(
    'a:b',
    'a:99999',
    'a:-1',
    '[::1',
    '[::1]:x',
    'u:p@h:1',
    'h',
    '',
    '%zz',
    'a b',
    'ex\u0000ample',
  ),
  fuzzString.map((s) => Buffer.from(s, 'utf8').toString('latin1')),
);

/** Request targets: mostly the port's own routes (sometimes spoiled), then every other form. */
const target = (service: RawService): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: pathOf(service) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(pathOf(service), percentEscape, fc.nat({ max: 3 }))
        .map(([path, esc, where]) => (where === 0 ? `${path}?x=${esc}` : `${path}${esc}`)),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('http', 'https', 'ftp', 'HTTP', 'x'), authority, pathOf(service))
        .map(([scheme, auth, path]) => `${scheme}://${auth}${path}`),
    },
    { weight: 1, arbitrary: fc.constantFrom('*', '', 'health', '//', '/..', '/./metrics', '?', '#') },
    { weight: 1, arbitrary: binary(40) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(pathOf(service), fc.constantFrom(8_000, 16_500, 70_000))
        .map(([path, n]) => `${path}?${'q'.repeat(n)}`),
    },
  );

const method = fc.oneof(
  { weight: 16, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'CONNECT',
      'TRACE',
      'BREW',
      'get',
      'G\u0000T',
      'SEARCH',
      'M-SEARCH',
      'A'.repeat(300),
    ),
  },
  { weight: 1, arbitrary: binary(8) },
);

const version = fc.oneof(
  { weight: 16, arbitrary: fc.constant('HTTP/1.1') },
  { weight: 3, arbitrary: fc.constant('HTTP/1.0') },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/9.9', 'http/1.1', 'HTTP/1.1 x', 'HTTP/', '') },
);

const lineEnd = fc.oneof(
  { weight: 30, arbitrary: fc.constant(CRLF) },
  { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '', '\r\r\n') },
);

const headerName = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'Content-Length',
      'Transfer-Encoding',
      'Content-Type',
      'Expect',
      'Upgrade',
      'Connection',
      'X-Request-Id',
      'Idempotency-Key',
      'Authorization',
      'Accept',
      'Cookie',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.constantFrom('', ' X', 'X ', ':', 'X\u0000Y', 'Ä', '((('), binary(12)),
  },
);

const headerValue = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(
      '0',
      '3',
      '-1',
      '1, 2',
      '99999999999999999999',
      'chunked',
      'chunked, gzip',
      'gzip, chunked',
      'identity',
      '100-continue',
      'banana',
      'websocket',
      'Upgrade',
      'close',
      'keep-alive',
      'application/json',
      'Bearer',
      'Bearer x',
      '',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...NASTY_STRINGS).map((s) => Buffer.from(s, 'utf8').toString('latin1')),
  },
  { weight: 1, arbitrary: binary(30) },
  { weight: 1, arbitrary: fc.constantFrom(8_000, 20_000).map((n) => 'v'.repeat(n)) },
  { weight: 1, arbitrary: fc.constant('folded\r\n continued') },
);

const host = fc.oneof(
  { weight: 12, arbitrary: fc.constant(['Host: fuzz']) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      [],
      ['Host:'],
      ['Host: a', 'Host: b'],
      ['Host: a:b'],
      ['Host: \u0000'],
      ['host: x'],
    ),
  },
);

/** Headers a client plausibly sends, so that many requests get past the parser to a handler. */
const plainHeader = fc.constantFrom<[string, string]>(
  ['Content-Type', 'application/json'],
  ['Accept', '*/*'],
  ['Connection', 'close'],
  ['Connection', 'keep-alive'],
  ['X-Request-Id', 'raw-fuzz'],
  ['Idempotency-Key', 'raw-fuzz-key'],
  ['Expect', '100-continue'],
  ['Upgrade', 'websocket'],
  ['Cookie', 'a=b'],
);
const header = fc.oneof(
  { weight: 3, arbitrary: plainHeader },
  { weight: 2, arbitrary: fc.tuple(headerName, headerValue) },
);

const body = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.constantFrom('{"text":"raw fuzz"}', '{"reports":[]}', '{}', '{"text":') },
  { weight: 2, arbitrary: binary(64) },
);

/** How the body's length is told: right, wrong, chunked (well or badly), both ways, or not at all. */
const framing = fc.oneof(
  { weight: 6, arbitrary: fc.constant('content-length' as const) },
  { weight: 2, arbitrary: fc.constantFrom('none' as const, 'chunked' as const) },
  { weight: 1, arbitrary: fc.constantFrom('wrong-length' as const, 'bad-chunks' as const, 'both' as const) },
);
type Framing = typeof framing extends fc.Arbitrary<infer F> ? F : never;

function frame(body: string, how: Framing, lineEnd: string): { headers: string[]; payload: string } {
  const chunked = body ? `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` : '0\r\n\r\n';
  switch (how) {
    case 'none':
      return { headers: [], payload: body };
    case 'content-length':
      return { headers: body ? [`Content-Length: ${body.length}`] : [], payload: body };
    case 'wrong-length':
      return { headers: [`Content-Length: ${body.length + 7}`], payload: body };
    case 'chunked':
      return { headers: ['Transfer-Encoding: chunked'], payload: chunked };
    case 'bad-chunks':
      return { headers: ['Transfer-Encoding: chunked'], payload: `zz${lineEnd}${body}` };
    case 'both':
      return { headers: [`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked'], payload: chunked };
  }
}

/** A request built from parts, any of which may be odd, with the token now and then. */
const assembled = (service: RawService): fc.Arbitrary<RawCase> =>
  fc
    .record({
      method,
      target: target(service),
      version,
      lineEnd,
      host,
      headers: fc.array(header, { maxLength: 3 }),
      token: fc.oneof(
        { weight: 3, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
      body,
      framing,
      // Where to cut the bytes short (a client that dies mid-request), or not at all.
      cut: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat() }),
    })
    .map((r): RawCase => {
      const line = `${r.method} ${r.target}${r.version ? ` ${r.version}` : ''}`;
      const { headers: framingHeaders, payload } = frame(r.body, r.framing, r.lineEnd);
      const lineParts = [r.method, r.target, r.version, ...r.host, ...r.headers.flat()];
      const whole =
        r.lineEnd === CRLF &&
        r.framing !== 'wrong-length' &&
        !lineParts.some((part) => /[\r\n]/.test(part)) &&
        !r.headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name.trim()));
      const head = [...r.host, ...r.headers.map(([n, v]) => `${n}: ${v}`), ...framingHeaders];
      const before = `${line}${r.lineEnd}${head.map((h) => `${h}${r.lineEnd}`).join('')}`;
      const after = `${r.lineEnd}${payload}`;
      if (r.cut !== undefined) {
        const bytes = before + after;
        return {
          service,
          label: 'cut short',
          segments: text(bytes.slice(0, 1 + (r.cut % bytes.length))),
          whole: false,
        };
      }
      const segments: RawSegment[] = r.token
        ? [before, 'Authorization: Bearer ', { $token: 'valid' }, r.lineEnd, after]
        : [before, after];
      return { service, label: 'assembled', segments, whole };
    });

const rawCase = (service: RawService): fc.Arbitrary<RawCase> =>
  fc.oneof(
    { weight: 9, arbitrary: assembled(service) },
    {
      weight: 1,
      arbitrary: binary(300).map(
        (bytes): RawCase => ({ service, label: 'random bytes', segments: [bytes], whole: false }),
      ),
    },
  );

/** The hand-written cases on every port, then `count` generated ones spread over the ports. */
export function generateRawCases(count: number, seed: number): RawCase[] {
  const fixed = RAW_SERVICES.flatMap((service) =>
    ODD_REQUESTS.map(
      (r): RawCase => ({ service, label: r.label, segments: [r.bytes], whole: r.whole ?? true }),
    ),
  );
  const generated = fc.sample(fc.constantFrom(...RAW_SERVICES).chain(rawCase), { numRuns: count, seed });
  return [...fixed, ...generated];
}

/** The bytes of a case with the token filled in. */
export function rawBytes(c: RawCase, token: string): Buffer {
  return Buffer.from(c.segments.map((s) => (typeof s === 'string' ? s : token)).join(''), 'latin1');
}
