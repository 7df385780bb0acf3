// Before anything starts: PostgreSQL and RabbitMQ answer with the configured credentials, the
// database exists (created when missing), and every port of the run is free. Each failure is one
// LaunchError whose message says how to fix it.
import { createServer } from 'node:net';
import { parseBrokerUrls } from '@task-pipeline/rabbitmq';
import amqp from 'amqplib';
import postgres from 'postgres';

export class LaunchError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LaunchError';
    this.code = code;
  }
}

const START_POSTGRES =
  'start it (Debian: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, ' +
  'macOS: `brew services start postgresql`), point DATABASE_URL at yours, or use ./run.sh --docker';
const START_RABBITMQ =
  'start it (`rabbitmq-server -detached`, macOS: `brew services start rabbitmq`), ' +
  'point AMQP_URL at yours, or use ./run.sh --docker';

/** The URL without its password, for messages; each URL of a broker list. */
export function redact(url: string): string {
  if (url.includes(',')) return parseBrokerUrls(url).map(redact).join(',');
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

function reason(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return [e.code, e.message].filter(Boolean).join(': ') || String(error);
}

/** Connects to the server's maintenance database and creates the configured one if it is missing. */
export async function ensureDatabase(databaseUrl: string): Promise<'created' | 'exists'> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!name)
    throw new LaunchError('DATABASE_URL_INVALID', `DATABASE_URL names no database: ${redact(databaseUrl)}`);
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, connect_timeout: 5, onnotice: () => undefined });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length > 0) return 'exists';
    await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
    return 'created';
  } catch (error) {
    if ((error as { code?: string }).code === '42P04') return 'exists'; // created meanwhile
    throw new LaunchError(
      'POSTGRES_UNAVAILABLE',
      `PostgreSQL at ${redact(admin.toString())} does not answer (${reason(error)}): ${START_POSTGRES}`,
      { cause: error },
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** One node of the broker list answering is enough: the services fail over to the others. */
export async function checkRabbitmq(amqpUrl: string): Promise<void> {
  let failure: unknown;
  for (const url of parseBrokerUrls(amqpUrl)) {
    try {
      const connection = await amqp.connect(url, { timeout: 5000 });
      await connection.close();
      return;
    } catch (error) {
      failure = error;
    }
  }
  throw new LaunchError(
    'RABBITMQ_UNAVAILABLE',
    `RabbitMQ at ${redact(amqpUrl)} does not answer (${reason(failure)}): ${START_RABBITMQ}`,
    { cause: failure },
  );
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, () => server.close(() => resolve(true)));
  });
}

export async function checkPortsFree(ports: number[]): Promise<void> {
  const busy: number[] = [];
  for (const port of ports) if (!(await portIsFree(port))) busy.push(port);
  if (busy.length > 0) {
    throw new LaunchError(
      'PORT_IN_USE',
      `port ${busy.join(', ')} already in use (another ./run.sh?): stop it, or set PORT / HEALTH_PORT in .env ` +
        '(consumers use HEALTH_PORT and the ports after it)',
    );
  }
}
