// The broker list of `AMQP_URL` and the order in which a service tries its nodes: pure, so both
// services' config schemas validate with the same parser the connection uses, and the rotation is
// unit-tested without sockets or timers.
import { type BackoffPolicy, backoffMs } from '@task-pipeline/common';
import { z } from 'zod';

export class BrokerUrlError extends Error {
  readonly code = 'BROKER_URL_INVALID';
}

const HOST_ONLY = /^(?<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(?<port>\d{1,5}))?$/;

/**
 * Splits `AMQP_URL` into one URL per broker node. Items are separated by commas, as RabbitMQ's own
 * clients take a list of addresses. Each item is either a whole `amqp://` / `amqps://` URL, or a bare
 * `host` or `host:port`, which is the first item with that host (and port, when given) in its place:
 * credentials, vhost and query parameters are the first URL's, so
 * `amqp://user:pass@rabbit-1:5672/prod,rabbit-2,rabbit-3:5673` names three nodes of one vhost.
 * Throws a BrokerUrlError naming the item that is neither.
 */
export function parseBrokerUrls(value: string): string[] {
  const items = value.split(',').map((item) => item.trim());
  if (items.some((item) => item === '')) throw new BrokerUrlError('an empty item in the broker list');
  const [first, ...rest] = items as [string, ...string[]];
  const base = parseWholeUrl(first, 1);
  // Whole URLs stay as written: amqplib parses them itself.
  const urls = [first];
  rest.forEach((item, i) => {
    if (item.includes('://')) {
      parseWholeUrl(item, i + 2);
      urls.push(item);
      return;
    }
    const match = HOST_ONLY.exec(item);
    const port = match?.groups?.port;
    if (!match?.groups?.host || (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))) {
      throw new BrokerUrlError(`item ${i + 2} is neither an amqp(s):// URL nor host[:port]`);
    }
    const url = new URL(base);
    url.hostname = match.groups.host;
    if (port !== undefined) url.port = port;
    urls.push(url.toString());
  });
  if (new Set(urls).size !== urls.length) throw new BrokerUrlError('names a broker twice');
  return urls;
}

function parseWholeUrl(item: string, position: number): URL {
  let url: URL;
  try {
    url = new URL(item);
  } catch {
    throw new BrokerUrlError(`item ${position} is not a URL`);
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new BrokerUrlError(`item ${position} is not an amqp:// or amqps:// URL`);
  }
  if (url.hostname === '') throw new BrokerUrlError(`item ${position} names no host`);
  return url;
}

/** The zod type of `AMQP_URL` in both services' schemas: a broker list, kept as written. */
export const brokerUrlListSchema = z.string().superRefine((value, ctx) => {
  try {
    parseBrokerUrls(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

/** `host:port` of a broker URL, for logs: never the credentials. */
export function brokerLabel(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || (parsed.protocol === 'amqps:' ? '5671' : '5672')}`;
}

/** Where a service connects first: a random node, so replicas spread their connections over the cluster. */
export function firstBrokerIndex(count: number, random: () => number = Math.random): number {
  return Math.min(count - 1, Math.floor(random() * count));
}

export interface ReconnectStep {
  /** The node to try next. */
  index: number;
  /** How long to wait before trying it. */
  delayMs: number;
}

/**
 * After `failures` consecutive failures (a lost connection counts as the first; every failed attempt
 * since adds one), the next node in rotation and the wait before it. The wait grows by round, not by
 * attempt: a node that is down costs one base delay while the others still answer, and only when a
 * whole round of the list failed does the backoff double. A node that came back is tried again when
 * its turn comes.
 */
export function nextBroker(
  lastIndex: number,
  failures: number,
  count: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): ReconnectStep {
  const round = Math.floor((Math.max(1, failures) - 1) / count) + 1;
  return { index: (lastIndex + 1) % count, delayMs: backoffMs(round, policy, random) };
}
