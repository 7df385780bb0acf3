// The published contract against what is served: every response a test got from a real producer is
// checked against the OpenAPI document that producer serves, as a validating proxy would check it.
// A documented operation must list the status, the media type and a schema the body satisfies; a
// path the document does not list must answer 404, and a method a listed path does not take 405 with
// an Allow header naming exactly the documented methods (what the document's description promises).
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { expect } from 'vitest';
import type { Exchange, TestProducer } from './producer.js';
import { httpClient } from './producer.js';

interface MediaType {
  schema?: unknown;
}
interface ResponseObject {
  content?: Record<string, MediaType>;
}
interface Operation {
  responses?: Record<string, ResponseObject>;
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const PROBLEM_POINTER = '/components/schemas/Problem';

/** A JSON pointer segment (RFC 6901). */
const segment = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');

const header = (headers: Exchange['headers'], name: string) => {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

export function createContractChecker(document: OpenApiDocument) {
  // The document as one schema resource: its $refs (#/components/schemas/…) resolve inside it.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(ajv);
  ajv.addSchema({ ...document, $id: 'openapi' }, 'openapi');

  function bodyViolations(exchange: Exchange, pointer: string, mediaType: string): string[] {
    const validate = ajv.getSchema(`openapi#${pointer}`);
    if (!validate) return [`no schema at ${pointer}`];
    let body: unknown = exchange.text;
    if (mediaType.endsWith('json')) {
      try {
        body = JSON.parse(exchange.text);
      } catch {
        return ['the body is not JSON'];
      }
    }
    if (validate(body)) return [];
    return (validate.errors ?? []).map((e) => `body${e.instancePath} ${e.message ?? 'is invalid'}`);
  }

  function problemViolations(exchange: Exchange, status: number): string[] {
    const violations = exchange.status === status ? [] : [`status ${exchange.status}, expected ${status}`];
    if (!/^application\/problem\+json/.test(header(exchange.headers, 'content-type') ?? ''))
      violations.push('not application/problem+json');
    return [...violations, ...bodyViolations(exchange, PROBLEM_POINTER, 'application/problem+json')];
  }

  // Templated paths (`/api/v1/tasks/{taskId}`) match any one segment in place of each parameter.
  const templates = Object.keys(document.paths).map((template) => ({
    template,
    pattern: new RegExp(
      `^${template
        .split(/\{[^}]+\}/)
        .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
        .join('[^/]+')}$`,
    ),
  }));
  function templateOf(path: string): string | undefined {
    if (document.paths[path]) return path;
    return templates.find((t) => t.pattern.test(path))?.template;
  }

  /** What a validating proxy would report about this response; empty when it is described. */
  function violations(exchange: Exchange): string[] {
    const found: string[] = [];
    if (!header(exchange.headers, 'x-request-id')) found.push('no x-request-id');
    const template = templateOf(exchange.path);
    const item = template === undefined ? undefined : document.paths[template];
    if (!item) {
      // The HTTP parser's refusals come before routing; anything else is the not-found handler.
      if ([400, 408, 431].includes(exchange.status))
        return [...found, ...problemViolations(exchange, exchange.status)];
      return [...found, ...problemViolations(exchange, 404)];
    }
    const method = exchange.method.toLowerCase();
    const operation = item[method === 'head' ? 'get' : method];
    if (!operation) {
      const documented = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
      if (documented.includes('GET')) documented.push('HEAD');
      const allow = documented.sort().join(', ');
      if (header(exchange.headers, 'allow') !== allow)
        found.push(`Allow: ${header(exchange.headers, 'allow')}, documented methods: ${allow}`);
      return [...found, ...problemViolations(exchange, 405)];
    }
    const code = String(exchange.status);
    const key = [code, `${code[0]}XX`, 'default'].find((k) => operation.responses?.[k]);
    if (!key) return [...found, `status ${code} is not documented`];
    const response = operation.responses?.[key] as ResponseObject;
    if (method === 'head' || exchange.text === '') return found;
    const mediaType =
      (header(exchange.headers, 'content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
    if (!response.content?.[mediaType])
      return [...found, `${mediaType || 'no content type'} is not documented`];
    const pointer = `/paths/${segment(template as string)}/${method}/responses/${key}/content/${segment(mediaType)}/schema`;
    return [...found, ...bodyViolations(exchange, pointer, mediaType)];
  }

  return { violations };
}

/** Fetches the document `producer` serves and expects every exchange its client recorded to fit it. */
export async function expectExchangesDescribed(producer: TestProducer, exchanges: readonly Exchange[]) {
  const served = await httpClient(producer.baseUrl)<OpenApiDocument>('GET', '/docs/json');
  expect(served.status).toBe(200);
  const { violations } = createContractChecker(served.body);
  const report = exchanges.flatMap((exchange) =>
    violations(exchange).map((v) => `${exchange.method} ${exchange.path} → ${exchange.status}: ${v}`),
  );
  expect(report).toEqual([]);
}
