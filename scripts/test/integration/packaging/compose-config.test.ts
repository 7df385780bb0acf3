// The real compose implementation (docker-compose v1 from Debian, or `docker compose` v2) accepts
// docker-compose.yml and resolves it as intended. Needs the binary, not an engine.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

function findCompose(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version']).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version']).status === 0) return ['docker-compose'];
  return undefined;
}
const compose = findCompose();
if (!compose)
  console.warn('compose-config: skipped, neither `docker compose` nor `docker-compose` is installed');

// An empty env file: a developer's .env must not change what the test sees.
const emptyEnvFile = join(mkdtempSync(join(tmpdir(), 'compose-config-')), 'empty.env');
writeFileSync(emptyEnvFile, '');

function config(args: string[], env: Record<string, string>) {
  const [command, ...prefix] = compose as string[];
  const { STATUS_API_TOKEN: _t, PORT: _p, RABBITMQ_MANAGEMENT_PORT: _m, ...base } = process.env;
  const result = spawnSync(
    command as string,
    [...prefix, '--env-file', emptyEnvFile, '-f', 'docker-compose.yml', ...args],
    { cwd: root, env: { ...base, ...env }, encoding: 'utf8' },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.runIf(compose)(`${compose?.join(' ')} config`, () => {
  const token = 'x'.repeat(32);

  test('accepts the file: two consumer replicas, the token in every app service, ports as configured', () => {
    const { status, stdout, stderr } = config(['config'], { STATUS_API_TOKEN: token, PORT: '8080' });
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const resolved = parse(stdout) as {
      services: Record<string, { deploy?: { replicas: number }; environment: Record<string, string | null> }>;
    };
    expect(Object.keys(resolved.services).sort()).toEqual([
      'consumer',
      'consumer-cluster',
      'consumer-high',
      'haproxy',
      'haproxy-cluster',
      'postgres',
      'producer',
      'producer-cluster',
      'rabbitmq',
      'rabbitmq-1',
      'rabbitmq-2',
      'rabbitmq-3',
      'tasks',
    ]);
    expect(resolved.services.consumer?.deploy?.replicas).toBe(2);
    for (const name of ['producer', 'consumer', 'consumer-high', 'producer-cluster', 'consumer-cluster']) {
      expect(resolved.services[name]?.environment.STATUS_API_TOKEN, name).toBe(token);
    }
    expect(stdout).toMatch(/published: "?8080"?/);
  });

  test('refuses to start without a STATUS_API_TOKEN, saying where it comes from', () => {
    const { status, stderr } = config(['config'], {});
    expect(status).not.toBe(0);
    expect(stderr).toContain('STATUS_API_TOKEN is not set - ./run.sh writes one into .env');
  });
});
