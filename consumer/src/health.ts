// Health and metrics on HEALTH_PORT. Plain node:http: three read-only GET routes need no framework,
// and the consumer then has no HTTP server dependency beyond Node itself.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://health').pathname;
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

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

function problem(res: ServerResponse, status: number, title: string, detail: string): void {
  res
    .writeHead(status, { 'content-type': 'application/problem+json; charset=utf-8' })
    .end(JSON.stringify({ type: 'about:blank', title, status, detail }));
}
