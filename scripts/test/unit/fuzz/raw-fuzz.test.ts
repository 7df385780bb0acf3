import { describe, expect, it } from 'vitest';
import {
  generateRawCases,
  ODD_REQUESTS,
  RAW_SERVICES,
  rawBytes,
  SERVICE_PATHS,
} from '../../../src/fuzz/raw-arbitraries.js';
import { describeRaw } from '../../../src/fuzz/raw-fuzz.js';

describe('generated raw requests', () => {
  it('are the same for the same seed', () => {
    expect(JSON.stringify(generateRawCases(100, 3))).toBe(JSON.stringify(generateRawCases(100, 3)));
    expect(JSON.stringify(generateRawCases(100, 3))).not.toBe(JSON.stringify(generateRawCases(100, 4)));
  });

  it('start with every hand-written request on every port, then spread over both ports', () => {
    const cases = generateRawCases(1_000, 1);
    expect(cases).toHaveLength(RAW_SERVICES.length * ODD_REQUESTS.length + 1_000);
    for (const service of RAW_SERVICES) {
      const labels = cases.filter((c) => c.service === service).map((c) => c.label);
      for (const r of ODD_REQUESTS) expect(labels).toContain(r.label);
      expect(cases.slice(-1_000).filter((c) => c.service === service).length).toBeGreaterThan(300);
    }
  });

  it('reach the routes of each port with well-formed requests as well as odd ones', () => {
    const cases = generateRawCases(2_000, 2);
    for (const service of RAW_SERVICES) {
      const wellFormed = cases.filter((c) => {
        const text = rawBytes(c, 'token').toString('latin1');
        return (
          c.service === service &&
          SERVICE_PATHS[service].some((path) => text.startsWith(`GET ${path} HTTP/1.1\r\nHost: fuzz\r\n`))
        );
      });
      expect(wellFormed.length, service).toBeGreaterThan(20);
    }
    const kinds = new Set(cases.map((c) => c.label));
    for (const kind of ['assembled', 'cut short', 'random bytes']) expect(kinds).toContain(kind);
  });

  it('mark what may not end a whole request, so that the runner half-closes after it', () => {
    const cases = generateRawCases(1_000, 6);
    for (const c of cases.filter((c) => c.label === 'cut short' || c.label === 'random bytes'))
      expect(c.whole).toBe(false);
    const whole = cases.filter((c) => c.whole && c.label === 'assembled');
    expect(whole.length).toBeGreaterThan(300);
    for (const c of whole)
      expect(rawBytes(c, 't').toString('latin1')).toMatch(/^[^\r\n]*\r\n([^\r\n]+\r\n)*\r\n/);
  });

  it('fill in the token and keep every other byte as generated', () => {
    const withToken = generateRawCases(500, 5).find((c) => c.segments.some((s) => typeof s !== 'string'));
    expect(withToken).toBeDefined();
    const bytes = rawBytes(withToken as NonNullable<typeof withToken>, 'secret-token');
    expect(bytes.toString('latin1')).toContain('Authorization: Bearer secret-token');
    const binary = { service: 'consumer' as const, label: 'x', segments: ['\u0000\u00ff'], whole: true };
    expect([...rawBytes(binary, 't')]).toEqual([0, 255]);
  });
});

describe('describeRaw', () => {
  it('escapes control and non-ASCII bytes and shortens long runs', () => {
    expect(describeRaw(Buffer.from(`GET /${'a'.repeat(40)} \u0000\u00ff\r\n`, 'latin1'))).toBe(
      'GET /[a x40] \\x00\\xff\\x0d\\x0a',
    );
  });
});
