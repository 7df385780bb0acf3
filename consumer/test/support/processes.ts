// Services as child processes, started the way an operator runs them from source
// (`node --conditions=source --import tsx <entry>`): one OS process each, so a test can SIGKILL or
// SIGTERM it and the signal reaches the service itself, not a wrapper.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '@task-pipeline/testkit/private-process';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout/stderr line so far. */
  readonly output: string[];
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnService(entry: string, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line) output.push(line);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  if (child.pid === undefined) throw new Error(`could not spawn ${entry}`);
  return {
    child,
    pid: child.pid,
    output,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface ConsumerProcess extends ServiceProcess {
  readonly healthUrl: string;
}

/** Starts consumer/src/main.ts and waits until its health port answers. */
export async function spawnConsumer(env: Record<string, string>): Promise<ConsumerProcess> {
  const port = await freePort();
  const service = spawnService('consumer/src/main.ts', {
    LOG_LEVEL: 'info',
    ...env,
    HEALTH_PORT: String(port),
  });
  const healthUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${healthUrl}/health/live`, service);
  return Object.assign(service, { healthUrl });
}

/** Starts producer/src/server.ts (migrations included) and waits until it answers. */
export async function spawnProducer(env: Record<string, string>): Promise<ServiceProcess & { url: string }> {
  const port = await freePort();
  const service = spawnService('producer/src/server.ts', {
    LOG_LEVEL: 'warn',
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/health/ready`, service);
  return Object.assign(service, { url });
}

async function waitForHttp(url: string, service: ServiceProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void service.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`${url}: the process exited:\n${service.output.join('\n')}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${url} did not answer in time:\n${service.output.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sums a Prometheus counter (all label sets, or those matching `labels`) from a /metrics text. */
export function counterFromText(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      (match[3] ?? '')
        .split(',')
        .filter(Boolean)
        .map((pair) => {
          const [k, v] = pair.split('=');
          return [k, v?.replace(/^"|"$/g, '')];
        }),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(match[4]);
  }
  return sum;
}

export async function scrape(healthUrl: string): Promise<string> {
  const res = await fetch(`${healthUrl}/metrics`);
  return res.text();
}
