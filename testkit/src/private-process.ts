// Shared plumbing for the private PostgreSQL and RabbitMQ instances: a free port, a temp folder the
// service account can write, commands run as that account (initdb refuses root; the RabbitMQ node
// must read the shared Erlang cookie), and a last-resort SIGKILL when the test process exits.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export class PrivateInstanceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PrivateInstanceError';
    this.code = code;
  }
}

/** A port the kernel just handed out, closed again so the service can bind it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new PrivateInstanceError('NO_PORT', 'could not obtain a free port'));
      });
    });
  });
}

/** Whether nothing listens on `port` (any address) right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, () => server.close(() => resolve(true)));
  });
}

/** Two consecutive free ports: local mode's consumers use HEALTH_PORT and HEALTH_PORT + 1. */
export async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 65_535 && (await portIsFree(port + 1))) return port;
  }
}

const isRoot = userInfo().uid === 0;

/** Temp folder owned by `account` when we are root, so the service can write into it. */
export function ownedTempDir(prefix: string, account: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', account], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', account], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  return dir;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a command as `account` (via runuser when we are root, directly otherwise) with extra env.
 * Rejects with the command's output in the message: that output is the only clue when a start fails.
 */
export function runAs(
  account: string,
  command: string,
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const envArgs = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const [file, argv] = isRoot
    ? ['runuser', ['-u', account, '--', 'env', ...envArgs, command, ...args]]
    : ['env', [...envArgs, command, ...args]];
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      { timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new PrivateInstanceError(
              'COMMAND_FAILED',
              `${command} ${args.join(' ')} failed: ${String(stderr || stdout || error.message).trim()}`,
              { cause: error },
            ),
          );
        } else resolve({ stdout, stderr });
      },
    );
  });
}

/** Reads a pid from the first line of a pid file; undefined when absent or unreadable. */
export function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True while the process runs; a zombie (exited, not yet reaped by init) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat is "pid (comm) STATE ..."; comm may contain spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// A crashed test must not leave a postmaster or an Erlang node behind: on exit, SIGKILL whatever
// the registered pid files still name (exit handlers must be synchronous, hence kill not stop).
const pidFilesToReap = new Set<string>();
let reaperInstalled = false;

export function reapOnExit(pidFile: string): () => void {
  pidFilesToReap.add(pidFile);
  if (!reaperInstalled) {
    reaperInstalled = true;
    process.once('exit', () => {
      for (const file of pidFilesToReap) {
        const pid = readPid(file);
        if (pid !== undefined) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
  return () => pidFilesToReap.delete(pidFile);
}
