// Runs the services of a local plan as child processes: prefixed logs, readiness polling, and one
// orderly stop (consumers first, so their last reports still reach the producer).
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { SERVICE_NODE_ARGS, type ServicePlan } from './plan.js';
import { LaunchError } from './preflight.js';

const COLORS = [36, 33, 35, 32, 34, 31];

export interface RunningService {
  plan: ServicePlan;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function prefixFor(name: string, index: number, width: number, color: boolean): string {
  const label = `${name.padEnd(width)} |`;
  return color ? `\u001b[${COLORS[index % COLORS.length]}m${label}\u001b[0m ` : `${label} `;
}

export function startService(
  plan: ServicePlan,
  root: string,
  prefix: string,
  extraNodeArgs: string[] = [],
): RunningService {
  // Own process group: a Ctrl-C in the terminal reaches only the launcher, which then stops each
  // service exactly once (a second signal would make a service skip its graceful shutdown).
  const child = spawn(process.execPath, [...SERVICE_NODE_ARGS[plan.role], ...extraNodeArgs, plan.entry], {
    cwd: root,
    env: plan.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream)
      createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  return { plan, child, exited };
}

async function isReady(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Resolves once the service's readiness URL answers 2xx; rejects if it exits or times out first. */
export async function waitReady(service: RunningService, timeoutMs: number): Promise<void> {
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void service.exited.then((e) => {
    exit = e;
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await isReady(service.plan.readyUrl))) {
    if (exit) {
      throw new LaunchError(
        'SERVICE_EXITED',
        `${service.plan.name} exited during start (code ${exit.code ?? exit.signal}): see its log above`,
      );
    }
    if (Date.now() > deadline) {
      throw new LaunchError(
        'SERVICE_NOT_READY',
        `${service.plan.name} not ready after ${timeoutMs / 1000} s (${service.plan.readyUrl})`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function signal(service: RunningService, sig: NodeJS.Signals): void {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return;
  try {
    service.child.kill(sig);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
async function stopOne(service: RunningService, graceMs: number): Promise<void> {
  signal(service, 'SIGTERM');
  const timer = setTimeout(() => signal(service, 'SIGKILL'), graceMs);
  await service.exited;
  clearTimeout(timer);
}

export async function stopAll(services: RunningService[], graceMs: number): Promise<void> {
  const consumers = services.filter((s) => s.plan.role === 'consumer');
  const producers = services.filter((s) => s.plan.role === 'producer');
  await Promise.all(consumers.map((s) => stopOne(s, graceMs)));
  await Promise.all(producers.map((s) => stopOne(s, graceMs)));
}

export function killAll(services: RunningService[]): void {
  for (const s of services) signal(s, 'SIGKILL');
}
