// A throwaway PostgreSQL cluster for tests and scripts that stop, restart or kill the database
// (PROTOCOL §10: the shared server on 5432 is never touched). initdb + pg_ctl on a free port, trust
// auth, socket and data in a temp folder, run as the `postgres` account because initdb refuses root.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import {
  freePort,
  isAlive,
  ownedTempDir,
  PrivateInstanceError,
  readPid,
  reapOnExit,
  runAs,
} from './private-process.js';

const ACCOUNT = 'postgres';

export interface PrivatePostgres {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres` (trust auth: any password works). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** URL of another database on this cluster. */
  urlFor(database: string): string;
  /** pid of the running postmaster, undefined when stopped. */
  pid(): number | undefined;
  start(): Promise<void>;
  /** Fast shutdown: sessions are disconnected, the cluster is consistent. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILL the postmaster (a crash); the next start() runs crash recovery. */
  kill(): Promise<void>;
  /** Stops whatever runs and removes the folder. */
  destroy(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** Defaults to a free port. */
  port?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
}

export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  const newest = versions[0];
  if (!newest) throw new PrivateInstanceError('NO_POSTGRES', `no PostgreSQL binaries under ${root}`);
  return join(root, newest, 'bin');
}

export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const port = options.port ?? (await freePort());
  const dir = ownedTempDir('tp-pg-', ACCOUNT);
  const dataDir = join(dir, 'data');
  const pidFile = join(dataDir, 'postmaster.pid');
  const unregister = reapOnExit(pidFile);
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    // Faults injected here are process crashes, not power loss: the page cache survives them, so
    // fsync only costs time on a shared machine.
    fsync: 'off',
    max_connections: 200,
    ...options.settings,
  };
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  const pgCtl = (...args: string[]) => runAs(ACCOUNT, join(bin, 'pg_ctl'), ['-D', dataDir, ...args]);

  const pid = () => {
    const p = readPid(pidFile);
    return p !== undefined && isAlive(p) ? p : undefined;
  };

  const start = async () => {
    // After a SIGKILL of the postmaster its backends notice and exit on their own, but until they
    // do the old shared memory is in use and pg_ctl start fails: retry for a while.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await pgCtl('-l', join(dir, 'postgres.log'), '-w', '-t', '60', '-o', serverOptions, 'start');
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };

  const stop = async () => {
    if (pid() === undefined) return;
    await pgCtl('-m', 'fast', '-w', '-t', '60', 'stop');
  };

  const kill = async () => {
    const p = pid();
    if (p === undefined) throw new PrivateInstanceError('NOT_RUNNING', 'private PostgreSQL is not running');
    process.kill(p, 'SIGKILL');
    await eventually('the killed postmaster to exit', () => !isAlive(p), { timeoutMs: 10_000 });
  };

  await runAs(ACCOUNT, join(bin, 'initdb'), [
    '-D',
    dataDir,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C.UTF-8',
    '--no-sync',
  ]);
  await start();

  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    urlFor: (database) => `postgres://postgres:postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    pid,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    kill,
    async destroy() {
      const p = pid();
      if (p !== undefined) {
        await pgCtl('-m', 'immediate', '-w', 'stop').catch(() => process.kill(p, 'SIGKILL'));
        await eventually('the postmaster to exit', () => !isAlive(p), { timeoutMs: 30_000 });
      }
      unregister();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
