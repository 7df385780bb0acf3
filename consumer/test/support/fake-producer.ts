// A real listening HTTP server that plays the producer's batch route, for reporter tests that need
// replies the real producer will not give on demand (413, 401, 5xx, a slow answer). Tests against
// the real producer use producer/src/app.ts instead.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StatusReport } from '../../src/report-messages.js';

export interface ItemReply {
  status: number;
  stale?: boolean;
  problem?: { type: string; title: string; status: number; detail: string };
}

/** Decides a whole request's reply: `{status}` alone for a request-level answer, else per item. */
export type BatchHandler = (
  reports: StatusReport[],
  request: { authorization: string | undefined; bytes: number },
) => Promise<{ status: number; items?: ItemReply[] }> | { status: number; items?: ItemReply[] };

export const acceptAll: BatchHandler = (reports) => ({
  status: 200,
  items: reports.map(() => ({ status: 200 })),
});

export interface FakeProducer {
  readonly url: string;
  /** Every request body received, in arrival order. */
  readonly requests: StatusReport[][];
  /** Every report the fake answered 200 for an item, in order. */
  readonly accepted: StatusReport[];
  setHandler(handler: BatchHandler): void;
  /** Forgets recorded requests (between tests). */
  reset(): void;
  close(): Promise<void>;
}

export async function startFakeProducer(handler: BatchHandler = acceptAll): Promise<FakeProducer> {
  let current = handler;
  const requests: StatusReport[][] = [];
  const accepted: StatusReport[] = [];

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (req.method !== 'PUT' || req.url !== '/api/v1/update-task-statuses') {
        res.writeHead(404).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      const reports = (JSON.parse(raw.toString('utf8')) as { reports: StatusReport[] }).reports;
      requests.push(reports);
      const reply = await current(reports, { authorization: req.headers.authorization, bytes: raw.length });
      if (!reply.items) {
        res
          .writeHead(reply.status, { 'content-type': 'application/problem+json' })
          .end(
            JSON.stringify({ type: 'about:blank', title: `status ${reply.status}`, status: reply.status }),
          );
        return;
      }
      const results = reports.map((r, i) => ({ taskId: r.taskId, ...(reply.items?.[i] ?? { status: 200 }) }));
      results.forEach((r, i) => {
        const report = reports[i];
        if (r.status === 200 && report) accepted.push(report);
      });
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify({ results }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    accepted,
    setHandler(next) {
      current = next;
    },
    reset() {
      requests.length = 0;
      accepted.length = 0;
      current = acceptAll;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
