// One place turns every failure into application/problem+json (RFC 9457) and stamps x-request-id on
// every response. Registered before any route: Fastify binds a route to the error handler that is
// current when the route is added.
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { CoalesceDeadlineError, CoalesceQueueFullError, clientErrorAnswer } from '@task-pipeline/common';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isDatabaseTimeout } from '../db/deadline.js';
import { describeIssues, ProblemError, problem } from '../problems.js';
import { PROBLEM_CONTENT_TYPE, type Problem } from '../schemas/problem.js';
import { isDatabaseUnavailable } from './db.js';

export const REQUEST_ID_HEADER = 'x-request-id';
/** An incoming id is reused only if it cannot smuggle anything into logs or headers. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** Fastify's `genReqId`: the caller's x-request-id when sane, a fresh UUID otherwise. */
export function requestIdFor(request: { headers: Record<string, string | string[] | undefined> }): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** Seconds a client should wait before retrying while the database is away. */
const RETRY_AFTER_S = 2;

function fromStatus(status: number, detail: string): Problem {
  const kind = (
    {
      400: 'invalidRequest',
      401: 'unauthorized',
      404: 'notFound',
      413: 'payloadTooLarge',
      415: 'unsupportedMediaType',
    } as const
  )[status];
  if (kind) return problem(kind, detail);
  return { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail };
}

function validationProblem(err: FastifyError): Problem {
  const part = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'request');
  const issues = (err.validation ?? []).map((issue) => ({
    path: `${part}${issue.instancePath === '/' ? '' : issue.instancePath}`,
    message: issue.message ?? 'is invalid',
  }));
  return problem('invalidRequest', describeIssues(issues));
}

export function toProblem(err: FastifyError, request: FastifyRequest): Problem {
  if (err instanceof ProblemError) return err.problem;
  if (hasZodFastifySchemaValidationErrors(err) || err.validation) return validationProblem(err);
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(
        'payloadTooLarge',
        `body exceeds this route's limit of ${request.routeOptions.bodyLimit ?? 'unknown'} bytes`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(
        'unsupportedMediaType',
        `content type ${request.headers['content-type'] ?? '(none)'} is not supported; send application/json`,
      );
    // The parser's message quotes the body: it would carry client data into the log.
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem('invalidRequest', 'body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem('invalidRequest', 'body is empty but the content type says JSON');
  }
  if (isDatabaseUnavailable(err)) {
    return problem('unavailable', 'the database is unavailable; retry later');
  }
  if (err instanceof CoalesceDeadlineError || isDatabaseTimeout(err)) {
    return problem('unavailable', 'the database did not answer in time; retry later');
  }
  if (err instanceof CoalesceQueueFullError) {
    return problem('unavailable', 'too many requests are waiting for the database; retry later');
  }
  const status = err.statusCode ?? 500;
  // Client errors raised by Fastify itself (bad content length, prototype poisoning) describe the input.
  if (status >= 400 && status < 500) return fromStatus(status, err.message);
  return problem('internal', `the request failed unexpectedly; quote ${REQUEST_ID_HEADER} ${request.id}`);
}

/** An answer written on the bare socket (no reply object exists there), then the connection closes. */
function rawProblem(socket: Duplex, status: number, detail: string): void {
  const body = JSON.stringify(fromStatus(status, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `${REQUEST_ID_HEADER}: ${randomUUID()}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers or URL over 16 KiB, garbage,
 * a request timeout) get problem+json and an x-request-id too; the connection is closed after.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  const answer = clientErrorAnswer(err.code);
  if (!answer || socket.destroyed) return;
  rawProblem(socket, answer.status, answer.detail);
}

/**
 * Fastify's `frameworkErrors`: a request target its router cannot decode (`/%zz`, `http://a:b/`) or a
 * parameter past its length limit is refused before any hook runs; answer it like every other error.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const body =
    err.code === 'FST_ERR_BAD_URL'
      ? fromStatus(400, 'the request target is not a valid URL (a bad percent-escape or authority)')
      : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? fromStatus(414, 'a path parameter is longer than the router accepts')
        : toProblem(err, request);
  request.log.info({ status: body.status, code: err.code }, 'request refused');
  reply.header(REQUEST_ID_HEADER, request.id);
  sendProblem(reply, body);
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

async function errorHandlerPlugin(app: FastifyInstance): Promise<void> {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  // What Node answers itself with no body at all: a CONNECT (it would just close) and an Expect it
  // cannot meet (a bare 417). problem+json like everything else, then the connection closes.
  app.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    rawProblem(socket, 405, `${req.method} is not allowed here`);
  });
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify(fromStatus(417, `cannot meet Expect: ${req.headers.expect}`));
    res
      .writeHead(417, {
        'content-type': PROBLEM_CONTENT_TYPE,
        [REQUEST_ID_HEADER]: randomUUID(),
        connection: 'close',
      })
      .end(body);
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    // Node's own check answers a bare 400; it is off (buildApp: requireHostHeader: false) for this one.
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new ProblemError('invalidRequest', 'HTTP/1.1 requires a Host header');
    }
    // A request on a connection kept alive past the start of shutdown: point it elsewhere.
    if (closing) {
      reply.header('connection', 'close');
      throw new ProblemError('unavailable', 'the producer is shutting down; retry on another replica');
    }
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const body = toProblem(err, request);
    if (body.status >= 500) {
      request.log.error({ err }, 'request failed');
      if (body.status === 503) reply.header('retry-after', String(RETRY_AFTER_S));
    } else {
      request.log.info({ status: body.status, detail: body.detail }, 'request refused');
    }
    // Errors raised before onRequest (a bad URL) have not been stamped yet.
    reply.header(REQUEST_ID_HEADER, request.id);
    return sendProblem(reply, body);
  });

  // The methods of every fixed path, for the Allow header of a 405 (HEAD routes of GET ones included).
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    if (/[:*]/.test(route.url)) return;
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    methodsByPath.set(route.url, methods);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const allowed = methodsByPath.get(path);
    if (allowed) {
      const allow = [...allowed].sort().join(', ');
      reply.header('allow', allow);
      return sendProblem(
        reply,
        problem('methodNotAllowed', `${request.method} is not allowed on ${path}; use ${allow}`),
      );
    }
    return sendProblem(reply, problem('notFound', `no route ${request.method} ${path}`));
  });
}

export default fp(errorHandlerPlugin, { name: 'error-handler', fastify: '5.x' });
