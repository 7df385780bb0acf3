// Health and metrics on HEALTH_PORT. Plain node:http: three read-only GET routes need no framework,
// and the consumer then has no HTTP server dependency beyond Node itself.
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientErrorAnswer } from '@task-pipeline/common';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  [detail: string]: unknown;
}

export interface HealthServerOptions {
  port: number;
  host?: string;
  readiness: () => Readiness;
  registry: Registry;
  logger: Logger;
}

export interface HealthServer {
  /** e.g. http://127.0.0.1:3001 (the bound port when `port` was 0). */
  readonly url: string;
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { readiness, registry, logger } = options;

  const routes: Record<string, (res: ServerResponse) => Promise<void> | void> = {
    '/health/live': (res) => json(res, 200, { status: 'ok' }),
    '/health/ready': (res) => {
      const report = readiness();
      json(res, report.ready ? 200 : 503, report);
    },
    '/metrics': async (res) => {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
    },
  };

  function handle(req: IncomingMessage, res: ServerResponse) {
    // Node leaves the Host check to us (requireHostHeader: false) so that its refusal is problem+json too.
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      return problem(res, 400, 'Bad Request', 'HTTP/1.1 requires a Host header');
    }
    const path = pathOf(req.url ?? '');
    if (path === undefined) {
      return problem(res, 400, 'Bad Request', 'the request target is neither a path nor an absolute URL');
    }
    const route = routes[path];
    if (!route) return problem(res, 404, 'Not Found', `no route ${path}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return problem(res, 405, 'Method Not Allowed', `${req.method} is not allowed on ${path}`);
    }
    Promise.resolve(route(res)).catch((err: unknown) => {
      logger.error({ err, path }, 'health route failed');
      if (!res.headersSent) problem(res, 500, 'Internal Server Error', 'see the consumer log');
    });
  }

  const server = createServer({ requireHostHeader: false }, (req, res) => {
    // Whatever a request holds, a throw here must not reach the process: it would stop the consumer.
    try {
      handle(req, res);
    } catch (err) {
      logger.error({ err }, 'health request failed');
      if (!res.headersSent) problem(res, 500, 'Internal Server Error', 'see the consumer log');
    }
  });
  // Requests Node refuses before the handler runs: bytes that are not HTTP, a request line and headers
  // over 16 KiB, a CONNECT, an Expect it cannot meet. Each gets a problem+json answer, then the
  // connection closes.
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    const answer = clientErrorAnswer(err.code);
    if (!answer || socket.destroyed) return;
    rawProblem(socket, answer.status, answer.detail);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    rawProblem(socket, 405, `${req.method} is not allowed here`, 'allow: GET, HEAD\r\n');
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('connection', 'close');
    problem(res, 417, 'Expectation Failed', `cannot meet Expect: ${req.headers.expect}`);
  });
  // Scrapers and probes keep connections open; close() must not wait for them.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The path of an origin-form target (`/metrics?x`) or an absolute-form one (`http://host/metrics`, what
 * a proxy sends); undefined for anything else (`*`, `http://a:b/`), which no route can match.
 */
function pathOf(target: string): string | undefined {
  if (target.startsWith('/')) return target.split('?', 1)[0];
  return URL.canParse(target) ? new URL(target).pathname : undefined;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

function problemBody(status: number, title: string, detail: string): string {
  return JSON.stringify({ type: 'about:blank', title, status, detail });
}

function problem(res: ServerResponse, status: number, title: string, detail: string): void {
  res.writeHead(status, { 'content-type': PROBLEM_CONTENT_TYPE }).end(problemBody(status, title, detail));
}

/** An answer written on the bare socket (no ServerResponse exists there), then the connection closes. */
function rawProblem(socket: Duplex, status: number, detail: string, extraHeaders = ''): void {
  const title = STATUS_CODES[status] ?? 'Error';
  const body = problemBody(status, title, detail);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
