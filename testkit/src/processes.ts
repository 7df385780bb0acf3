// Services as child processes, one OS process each, for the tests and the bench, chaos and fuzz runs:
// a signal reaches the service itself, not a wrapper, and /proc shows each one's RSS and CPU. A built
// entry (`.js`) runs under plain node, as in production; a TypeScript entry under
// `node --conditions=source --import tsx`, not the tsx CLI: that CLI sits between a test's signals and
// the service, and SIGKILLs a child that has not acknowledged a relayed signal within about 60 ms,
// which a loaded machine misses now and then. Output goes to a log file per process, not a pipe, so
// a long run costs the parent nothing and the log is there to read when something fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class ServiceError extends Error {
  constructor(
    readonly code: 'SERVICE_EXITED' | 'SERVICE_NOT_READY',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ServiceError';
  }
}

export interface Exit {
  /** null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** stdout and stderr, interleaved as written. */
  readonly logPath: string;
  /** Resolves when it exited. */
  readonly exited: Promise<Exit>;
  /** The exit code once it exited (null after a signal), undefined while it runs. */
  exitCode(): number | null | undefined;
  /** Everything it wrote so far. */
  output(): string;
  /** Its non-empty output lines so far. */
  lines(): string[];
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
  /** Resolves on the first IPC message equal to `message` (children that report their own readiness). */
  message(message: string, timeoutMs: number): Promise<void>;
  /** Sends an IPC message (children that wait to be told to begin). */
  send(message: string): void;
  /** Sends `signal` (SIGTERM unless given) if it still runs. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, SIGKILL after `graceMs`, and the exit. */
  stop(graceMs?: number): Promise<Exit>;
}

/**
 * The folder of a test run's service logs, made and removed by the run (service-logs-setup.ts): a
 * failing test quotes the tail it needs. A script's run (chaos, fuzz) makes its own and keeps it for
 * the paths it prints.
 */
export const SERVICE_LOG_DIR_ENV = 'TP_SERVICE_LOG_DIR';

const newServiceLogDir = () => mkdtempSync(join(tmpdir(), 'tp-service-logs-'));

/**
 * For a run that removes its service logs when it ends (a test run, a bench): makes the folder and
 * points SERVICE_LOG_DIR_ENV at it for this process and the ones it starts. Undefined when the
 * variable was already set: that folder is someone else's to keep.
 */
export function ownServiceLogDir(): string | undefined {
  if (process.env[SERVICE_LOG_DIR_ENV] !== undefined) return undefined;
  const dir = newServiceLogDir();
  process.env[SERVICE_LOG_DIR_ENV] = dir;
  return dir;
}

let logDir: string | undefined;
function serviceLogDir(): string {
  logDir ??= process.env[SERVICE_LOG_DIR_ENV] ?? newServiceLogDir();
  return logDir;
}

export interface StartOptions {
  /** The node binary; this process's own by default. */
  execPath?: string;
  /** node flags before the entry (`--cpu-prof`, say). */
  nodeArgs?: readonly string[];
  /**
   * Whether the child sees this process's environment under `env` (default), or `env` and PATH
   * only: a configuration test must not pick up the shell's variables.
   */
  inheritEnv?: boolean;
}

/**
 * Starts `entry` (a path relative to the repository root) with `env`, with an IPC channel
 * (`message`/`send`; a child that does not listen for messages is not kept alive by it).
 */
export function startService(
  name: string,
  entry: string,
  env: Record<string, string>,
  options: StartOptions = {},
): Service {
  const logPath = join(serviceLogDir(), `${name}-${Date.now()}-${process.pid}.log`);
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    const fromSource = entry.endsWith('.ts') ? ['--conditions=source', '--import', 'tsx'] : [];
    const base = options.inheritEnv === false ? { PATH: process.env.PATH ?? '' } : process.env;
    child = spawn(
      options.execPath ?? process.execPath,
      [...fromSource, ...(options.nodeArgs ?? []), join(REPO_ROOT, entry)],
      { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ['ignore', fd, fd, 'ipc'] },
    );
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new ServiceError('SERVICE_EXITED', `${name} did not start (${entry})`);
  let code: number | null | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (c, signal) => {
      code = c;
      resolve({ code: c, signal });
    }),
  );
  const output = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const lines = () => output().split('\n').filter(Boolean);
  const tail = (count = 30) => lines().slice(-count).join('\n');
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  return {
    name,
    pid,
    child,
    logPath,
    exited,
    exitCode: () => code,
    output,
    lines,
    tail,
    kill,
    send(message) {
      child.send(message);
    },
    message(expected, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new ServiceError('SERVICE_NOT_READY', `${name} not ready in ${timeoutMs} ms:\n${tail()}`));
        }, timeoutMs);
        const onMessage = (m: unknown) => {
          if (m !== expected) return;
          cleanup();
          resolve();
        };
        const onExit = () => {
          cleanup();
          reject(new ServiceError('SERVICE_EXITED', `${name} exited with ${code}:\n${tail()}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          child.off('message', onMessage);
          child.off('exit', onExit);
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
      });
    },
    async stop(graceMs = 10_000) {
      kill('SIGTERM');
      const killer = setTimeout(() => kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(killer);
      return exit;
    },
  };
}

/** Polls `url` until it answers 2xx; fails early, with the log, if the service exits first. */
export async function waitForHttp(service: Service, url: string, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${service.name}: ${url} to answer 2xx`,
    async () => {
      if (service.exitCode() !== undefined) {
        throw new ServiceError(
          'SERVICE_EXITED',
          `${service.name} exited with ${service.exitCode()} before ${url} answered:\n${service.tail()}`,
        );
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false; // not listening yet
      }
    },
    { timeoutMs, intervalMs: 25 },
  ).catch((error: unknown) => {
    if (error instanceof ServiceError) throw error;
    throw new ServiceError(
      'SERVICE_NOT_READY',
      `${service.name}: ${url} not ready in ${timeoutMs} ms:\n${service.tail()}`,
      {
        cause: error,
      },
    );
  });
}

export async function stopAll(services: readonly (Service | undefined)[]): Promise<void> {
  await Promise.all(services.map((s) => s?.stop()));
}

/** Throws, with the log, when a service under test died mid-measure (a number from a dead run is a lie). */
export function assertRunning(services: readonly Service[]): void {
  for (const service of services) {
    if (service.exitCode() !== undefined) {
      throw new ServiceError(
        'SERVICE_EXITED',
        `${service.name} exited with ${service.exitCode()}:\n${service.tail()}`,
      );
    }
  }
}
