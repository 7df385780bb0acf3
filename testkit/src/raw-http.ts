// HTTP as bytes on a TCP socket (node:net): what an HTTP client library refuses to send (absolute-form
// and `*` targets, bad percent-escapes, binary request lines, broken headers) reaches the server
// exactly as written. One request per connection; the answer is read until its framing says it is
// complete (Content-Length, chunked) or the server closes.
import { connect } from 'node:net';

export interface RawReply {
  /** The status code of the answer, or undefined when no status line came back. */
  status: number | undefined;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: Buffer;
  /** How it ended: a complete answer, a close or a reset without one, no connection, or the timeout. */
  ending: 'answered' | 'closed' | 'reset' | 'refused' | 'timeout';
}

export interface RawRequestOptions {
  /** Give up waiting for an answer after this long (default 10 s). */
  timeoutMs?: number;
  /**
   * Half-close after writing (default false), for bytes that may not be a whole request: a server
   * waiting for the rest must then answer. Node's HTTP server also abandons a response still being
   * computed when the client half-closes, so a whole request is sent without it, as clients do.
   */
  endAfterWrite?: boolean;
}

interface Head {
  status: number | undefined;
  headers: Record<string, string>;
  bodyStart: number;
}

/** The final answer's head: interim ones (`100 Continue`) are skipped. */
function parseHead(data: Buffer, from = 0): Head | undefined {
  const end = data.indexOf('\r\n\r\n', from);
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = data.subarray(from, end).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = match ? Number(match[1]) : undefined;
  if (status !== undefined && status >= 100 && status < 200) return parseHead(data, end + 4);
  return { status, headers, bodyStart: end + 4 };
}

/** True once the bytes after the head hold the whole body its framing announces. */
function bodyComplete(head: Head, data: Buffer, method: string): boolean {
  const body = data.subarray(head.bodyStart);
  const status = head.status ?? 0;
  if (method === 'HEAD' || status === 204 || status === 304) return true;
  const length = head.headers['content-length'];
  if (length !== undefined) return body.length >= Number(length);
  if (/chunked/i.test(head.headers['transfer-encoding'] ?? '')) return body.includes('0\r\n\r\n');
  return false;
}

/** The body with chunked framing removed; what cannot be decoded is returned as it came. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) return body;
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return body;
    if (size === 0) return Buffer.concat(parts);
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** Sends `bytes` as they are to host:port and reads one answer. Never rejects. */
export function sendRaw(
  host: string,
  port: number,
  bytes: Buffer | string,
  options: RawRequestOptions = {},
): Promise<RawReply> {
  const payload = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const method = /^[A-Z]+/.exec(payload.subarray(0, 16).toString('latin1'))?.[0] ?? '';
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (ending: RawReply['ending']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const data = Buffer.concat(chunks);
      const head = parseHead(data);
      const body = head ? data.subarray(head.bodyStart) : Buffer.alloc(0);
      resolve({
        status: head?.status,
        headers: head?.headers ?? {},
        body: /chunked/i.test(head?.headers['transfer-encoding'] ?? '') ? dechunk(body) : body,
        ending: head?.status !== undefined && ending === 'closed' ? 'answered' : ending,
      });
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      // The server may answer and close before reading everything: a failed write is no failure here.
      socket.write(payload, () => {
        if (options.endAfterWrite === true) socket.end();
      });
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const data = Buffer.concat(chunks);
      const head = parseHead(data);
      if (head?.status !== undefined && bodyComplete(head, data, method)) finish('answered');
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNRESET' ? 'reset' : err.code === 'ECONNREFUSED' ? 'refused' : 'closed'),
    );
    socket.on('close', () => finish('closed'));
  });
}
