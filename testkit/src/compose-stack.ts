// The compose stack of docker-compose.yml under a project name of its own, driven through the real
// docker and compose CLIs (v2 `docker compose` or v1 `docker-compose`, whichever exists). Tests use
// it so a developer's running stack and this machine's PostgreSQL/RabbitMQ are never touched.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Why containers cannot be tested here, or undefined when an engine and compose answer. */
export function containerEngineUnavailable(): string | undefined {
  const info = spawnSync('docker', ['info'], { timeout: 20_000, encoding: 'utf8' });
  if (info.error) return `docker CLI not found (${info.error.message})`;
  if (info.status !== 0)
    return `no Docker engine answers (docker info: ${info.stderr.trim().split('\n').pop()})`;
  if (!composeCommand()) return 'neither `docker compose` nor `docker-compose` is installed';
  return undefined;
}

export function composeCommand(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version']).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version']).status === 0) return ['docker-compose'];
  return undefined;
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface ContainerState {
  id: string;
  name: string;
  service: string;
  user: string;
  running: boolean;
  /** healthy | unhealthy | starting, or 'none' without a healthcheck. */
  health: string;
  healthcheck: string[];
  exitCode: number;
  startedAt: string;
  finishedAt: string;
  restartCount: number;
}

export class ComposeStack {
  readonly project = `tpct${randomBytes(4).toString('hex')}`;
  private readonly dir = mkdtempSync(join(tmpdir(), 'compose-stack-'));
  private readonly envFile = join(this.dir, 'stack.env');
  private readonly command: string[];

  /**
   * `env` becomes the stack's .env: the repository's own .env is not read. `profiles` are enabled
   * for every command, so `down` also removes their containers.
   */
  constructor(
    readonly env: Record<string, string>,
    private readonly profiles: readonly string[] = [],
  ) {
    const command = composeCommand();
    if (!command) throw new Error('no compose command');
    this.command = command;
    writeFileSync(
      this.envFile,
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
    );
  }

  async compose(...args: string[]): Promise<string> {
    const [bin, ...prefix] = this.command as [string, ...string[]];
    const full = [
      ...prefix,
      '-p',
      this.project,
      '--env-file',
      this.envFile,
      '-f',
      'docker-compose.yml',
      ...this.profiles.flatMap((profile) => ['--profile', profile]),
      ...args,
    ];
    try {
      const { stdout, stderr } = await exec(bin, full, { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
      return stdout + stderr;
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      // `up` fails on a dependency's health: say what each healthcheck saw.
      const health = args[0] === 'up' ? `\n${await this.healthReport().catch(() => '')}` : '';
      throw new Error(`${bin} ${full.join(' ')} failed: ${e.stderr || e.stdout || e.message}${health}`, {
        cause: error,
      });
    }
  }

  async containers(): Promise<ContainerState[]> {
    const ids = (await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${this.project}`))
      .split('\n')
      .filter(Boolean);
    if (ids.length === 0) return [];
    const inspected = JSON.parse(await docker('inspect', ...ids)) as Array<{
      Id: string;
      Name: string;
      RestartCount: number;
      Config: { User: string; Labels: Record<string, string>; Healthcheck?: { Test: string[] } };
      State: {
        Running: boolean;
        ExitCode: number;
        StartedAt: string;
        FinishedAt: string;
        Health?: { Status: string };
      };
    }>;
    return inspected
      .map((c) => ({
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        service: c.Config.Labels['com.docker.compose.service'] ?? '',
        user: c.Config.User,
        running: c.State.Running,
        health: c.State.Health?.Status ?? 'none',
        healthcheck: c.Config.Healthcheck?.Test ?? [],
        exitCode: c.State.ExitCode,
        startedAt: c.State.StartedAt,
        finishedAt: c.State.FinishedAt,
        restartCount: c.RestartCount,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Each container's health and the last results of its healthcheck, for failure messages. */
  async healthReport(): Promise<string> {
    const lines: string[] = [];
    for (const c of await this.containers()) {
      const health = JSON.parse(
        await docker('inspect', '-f', '{{json .State.Health}}', c.id).catch(() => 'null'),
      ) as { Status: string; Log?: { ExitCode: number; Output: string; End: string }[] } | null;
      lines.push(`${c.name}: ${c.running ? (health?.Status ?? 'no healthcheck') : `exited ${c.exitCode}`}`);
      for (const entry of (health?.Log ?? []).slice(-3))
        lines.push(`  ${entry.End} exit ${entry.ExitCode} ${entry.Output.trim().slice(0, 200)}`);
    }
    return lines.join('\n');
  }

  async service(name: string): Promise<ContainerState[]> {
    return (await this.containers()).filter((c) => c.service === name);
  }

  /** Waits until `count` containers run and every one is healthy. */
  async waitHealthy(count: number, timeoutMs: number): Promise<ContainerState[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = await this.containers();
      const running = all.filter((c) => c.running);
      if (running.length === count && running.every((c) => c.health === 'healthy')) return running;
      if (Date.now() > deadline) {
        throw new Error(
          `stack ${this.project} not healthy after ${timeoutMs / 1000} s:\n${await this.healthReport()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Removes containers, volumes, networks and the images built for this project. */
  async destroy(): Promise<void> {
    try {
      await this.compose('down', '-v', '--rmi', 'local', '--remove-orphans', '-t', '5');
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
