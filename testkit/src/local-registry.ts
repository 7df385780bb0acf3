// A throwaway image registry for the publish-script test: Debian's `docker-registry` (distribution
// 2.x) on a free 127.0.0.1 port with storage in a temp folder. Docker talks plain HTTP to registries
// on 127.0.0.0/8 without any daemon configuration.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import { freePort } from './private-process.js';

export interface LocalRegistry {
  /** host:port, the REGISTRY the publish scripts take. */
  address: string;
  stop(): Promise<void>;
}

export const REGISTRY_BINARY = 'docker-registry';

export function registryUnavailable(): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${REGISTRY_BINARY}`]);
  if (found.status !== 0) {
    return `${REGISTRY_BINARY} is not installed (Debian: apt-get install docker-registry)`;
  }
  return undefined;
}

async function answers(address: string): Promise<boolean> {
  try {
    const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(1000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

export async function startLocalRegistry(): Promise<LocalRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'registry-'));
  const address = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      'http:',
      `  addr: ${address}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(REGISTRY_BINARY, ['serve', config], { stdio: 'ignore' });
  // A crashed test must not leave the registry running.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  const stop = async () => {
    process.off('exit', reap);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(`registry at ${address}`, () => answers(address), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { address, stop };
}
