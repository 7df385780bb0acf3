// Services under test run as their own node processes, one per service, so /proc shows each one's
// RSS and CPU. A built entry (`.js`) runs under plain node, as in production; a TypeScript entry
// (the chaos and fuzz runs start ours from source) through `--conditions=source --import tsx`.
// Their output goes to a log file per process, read when something fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

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

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** The exit code once it exited, undefined while it runs. */
  exitCode(): number | null | undefined;
  /** Resolves on the first IPC message equal to `message` (children that report their own readiness). */
  message(message: string, timeoutMs: number): Promise<void>;
  /** Sends an IPC message (children that wait to be told to begin). */
  send(message: string): void;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
}

let logDir: string | undefined;
function serviceLogDir(): string {
  logDir ??= mkdtempSync(join(tmpdir(), 'tp-bench-logs-'));
  return logDir;
}

/**
 * BENCH_CPU_PROF=DIR starts every service (ours and the baselines) with `--cpu-prof` into DIR/<name>/
 * (written when it stops); `profile-summary.ts` lists where the time went.
 */
function profileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`] : [];
}

export interface StartOptions {
  /** The node binary; this process's own by default. */
  execPath?: string;
  /** node flags before the entry (`--cpu-prof`, say). */
  nodeArgs?: readonly string[];
}

/**
 * Starts `entry` (a path relative to the repository root) with `env` on top of this process's
 * environment.
 */
export function startService(
  name: string,
  entry: string,
  env: Record<string, string>,
  options: StartOptions = {},
): Service {
  const logPath = join(serviceLogDir(), `${name}-${Date.now()}.log`);
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    const fromSource = entry.endsWith('.ts') ? ['--conditions=source', '--import', 'tsx'] : [];
    child = spawn(
      options.execPath ?? process.execPath,
      [...fromSource, ...profileArgs(name), ...(options.nodeArgs ?? []), join(REPO_ROOT, entry)],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', fd, fd, 'ipc'],
      },
    );
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new ServiceError('SERVICE_EXITED', `${name} did not start`);
  let code: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (c, signal) => {
      code = c ?? (signal ? null : 0);
      resolve();
    }),
  );
  const tail = (lines = 30) => {
    try {
      return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  return {
    name,
    pid,
    logPath,
    exitCode: () => code,
    tail,
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
      if (code !== undefined) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Polls `url` until it answers 2xx; fails early, with the log, if the service exits first. */
export async function waitForHttp(service: Service, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (service.exitCode() !== undefined) {
      throw new ServiceError(
        'SERVICE_EXITED',
        `${service.name} exited with ${service.exitCode()}:\n${service.tail()}`,
      );
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new ServiceError(
        'SERVICE_NOT_READY',
        `${service.name}: ${url} not ready in ${timeoutMs} ms:\n${service.tail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
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
