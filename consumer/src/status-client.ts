// The producer's batch status route over a keep-alive undici Pool: reporters send a batch every few
// milliseconds, so reusing connections matters. Replies are returned as data; only a network
// failure or an unreadable 2xx body throws (the reporter retries both).
import { Pool } from 'undici';
import { z } from 'zod';
import type { StatusReport } from './report-messages.js';

export const BATCH_STATUS_PATH = '/api/v1/update-task-statuses';

const ProblemSchema = z.looseObject({
  type: z.string().optional(),
  title: z.string().optional(),
  status: z.number().optional(),
  detail: z.string().optional(),
});
export type Problem = z.infer<typeof ProblemSchema>;

const ItemResultSchema = z.looseObject({
  taskId: z.string(),
  status: z.int(),
  stale: z.boolean().optional(),
  problem: ProblemSchema.optional(),
});
export type ItemResult = z.infer<typeof ItemResultSchema>;

const BatchBodySchema = z.looseObject({ results: z.array(ItemResultSchema) });

export type BatchReply = { status: number; results: ItemResult[] } | { status: number; problem?: Problem };

export class StatusClientError extends Error {
  constructor(
    readonly code: 'NETWORK' | 'BAD_RESPONSE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StatusClientError';
  }
}

export interface StatusClientOptions {
  producerUrl: string;
  token: string;
  /** Headers and body timeouts of one request. */
  requestTimeoutMs?: number;
  connections?: number;
}

export interface StatusClient {
  updateStatuses(reports: readonly StatusReport[], signal?: AbortSignal): Promise<BatchReply>;
  close(): Promise<void>;
}

export function createStatusClient(options: StatusClientOptions): StatusClient {
  const base = new URL(options.producerUrl);
  // A path prefix in PRODUCER_URL (a reverse proxy) is kept.
  const path = `${base.pathname.replace(/\/+$/, '')}${BATCH_STATUS_PATH}`;
  const timeout = options.requestTimeoutMs ?? 10_000;
  const pool = new Pool(base.origin, {
    connections: options.connections ?? 4,
    keepAliveTimeout: 30_000,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  const authorization = `Bearer ${options.token}`;

  return {
    async updateStatuses(reports, signal) {
      let response: Awaited<ReturnType<Pool['request']>>;
      try {
        response = await pool.request({
          method: 'PUT',
          path,
          // The reporter reads only each report's code: no task bodies back.
          headers: { 'content-type': 'application/json', authorization, prefer: 'return=minimal' },
          body: JSON.stringify({ reports }),
          signal,
        });
      } catch (err) {
        throw new StatusClientError('NETWORK', `PUT ${path} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const status = response.statusCode;
      let body: unknown;
      try {
        const text = await response.body.text();
        body = text ? JSON.parse(text) : undefined;
      } catch (err) {
        if (status >= 200 && status < 300) {
          throw new StatusClientError('BAD_RESPONSE', `PUT ${path}: ${status} with an unreadable body`, {
            cause: err,
          });
        }
        body = undefined;
      }
      if (status >= 200 && status < 300) {
        const parsed = BatchBodySchema.safeParse(body);
        const inOrder =
          parsed.success &&
          parsed.data.results.length === reports.length &&
          // The producer answers ids in lower case; ours are lower-cased where they enter, but a
          // spelling must never turn an answered batch into one that is retried forever.
          parsed.data.results.every((r, i) => r.taskId.toLowerCase() === reports[i]?.taskId.toLowerCase());
        if (!parsed.success || !inOrder) {
          throw new StatusClientError(
            'BAD_RESPONSE',
            `PUT ${path}: ${status} without one result per report, in request order`,
          );
        }
        return { status, results: parsed.data.results };
      }
      const problem = ProblemSchema.safeParse(body);
      return problem.success ? { status, problem: problem.data } : { status };
    },
    close: () => pool.close(),
  };
}
