// A client of the producer's public API (PROTOCOL §4), as a user sees it: create a task, read a
// task. No database, no broker, no token.
import { Pool } from 'undici';
import type { Task } from '../../../producer/src/tasks/task.js';

export type { TaskStatus } from '../../../producer/src/tasks/status-transitions.js';
// The task as the API returns it is the producer's domain task (type-only: nothing of the producer
// is loaded, the client stays a plain HTTP client).
export type { Task } from '../../../producer/src/tasks/task.js';

export interface CreateTaskBody {
  text: string;
  priority?: Task['priority'];
}

export class ApiError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
  }
}

export interface ApiClient {
  createTask(body: CreateTaskBody): Promise<Task>;
  getTask(taskId: string): Promise<Task>;
  close(): Promise<void>;
}

export function createApiClient(baseUrl: string, connections = 16): ApiClient {
  const origin = new URL(baseUrl).origin;
  const pool = new Pool(origin, { connections, headersTimeout: 30_000, bodyTimeout: 30_000 });

  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Task> {
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      response = await pool.request({
        method,
        path,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(
        'API_UNREACHABLE',
        `${method} ${origin}${path}: ${(error as Error).message}`,
        undefined,
        {
          cause: error,
        },
      );
    }
    const text = await response.body.text();
    if (response.statusCode >= 300) {
      let detail = text;
      try {
        detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
      } catch {
        // not problem+json: keep the raw text
      }
      throw new ApiError(
        'API_ERROR',
        `${method} ${path}: ${response.statusCode} ${detail}`,
        response.statusCode,
      );
    }
    return JSON.parse(text) as Task;
  }

  return {
    createTask: (body) => call('POST', '/api/v1/create-task', body),
    getTask: (taskId) => call('GET', `/api/v1/get-task-data?taskId=${encodeURIComponent(taskId)}`),
    close: () => pool.close(),
  };
}
