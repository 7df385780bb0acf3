// run.sh's own decisions, with a stand-in `docker` on PATH that records its calls and plays an
// engine: options, the generated token in .env, settings read from .env, the health wait and
// its failure report. (The real engine path is scripts/test/system/containers.test.ts.)
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '@task-pipeline/testkit/compose-stack';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

// The stand-in answers `docker info`, `docker compose ...` and `docker inspect`; HEALTH sets what
// every container reports.
const FAKE_DOCKER = `#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_LOG"
case "$1" in
  info) exit "\${FAKE_INFO_STATUS:-0}" ;;
  compose)
    case "$2" in
      version) exit 0 ;;
      ps) printf 'c1\\nc2\\n' ;;
    esac ;;
  inspect) echo "/stack_\${4}_1 \${FAKE_HEALTH:-healthy}" ;;
esac
exit 0
`;

describe('run.sh', () => {
  let dir: string;
  let log: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'run-sh-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'docker'), FAKE_DOCKER);
    chmodSync(join(dir, 'bin', 'docker'), 0o755);
    copyFileSync(join(REPO_ROOT, 'run.sh'), join(dir, 'run.sh'));
    log = join(dir, 'calls.log');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function run(args: string[], env: Record<string, string> = {}) {
    const { STATUS_API_TOKEN: _t, PORT: _p, RABBITMQ_MANAGEMENT_PORT: _m, ...base } = process.env;
    // From another working directory: run.sh must find its own folder.
    const result = spawnSync('bash', [join(dir, 'run.sh'), ...args], {
      cwd: tmpdir(),
      env: { ...base, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, FAKE_LOG: log, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: result.status, out: result.stdout + result.stderr };
  }
  const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  const dotEnv = () => readFileSync(join(dir, '.env'), 'utf8');

  test('--help explains the modes; an unknown option is refused with exit 2', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    for (const word of ['--docker', '--local', '.env', 'STATUS_API_TOKEN', 'Ctrl-C'])
      expect(help.out).toContain(word);
    const bad = run(['--fast']);
    expect(bad.status).toBe(2);
    expect(bad.out).toContain('unknown option --fast');
    expect(calls()).toEqual([]);
  });

  test('with an engine: writes a token to a private .env, compose up --build, waits for health, prints the URLs', () => {
    const { status, out } = run([]);
    expect(status, out).toBe(0);
    expect(dotEnv()).toMatch(/^STATUS_API_TOKEN=[0-9a-f]{48}$/m);
    expect(statSync(join(dir, '.env')).mode & 0o777).toBe(0o600);
    expect(calls()).toContain('docker compose up -d --build');
    // The printed way to try it needs nothing on the host: the tasks CLI's image is built here.
    expect(calls()).toContain('docker compose --profile tools build tasks');
    expect(out).toContain('Try it        docker compose run --rm tasks 100');
    expect(out).not.toContain('npm run');
    expect(out).toContain('API           http://localhost:3000/api/v1');
    expect(out).toContain('Swagger UI    http://localhost:3000/docs');
    expect(out).toContain('RabbitMQ UI   http://127.0.0.1:15673');
  });

  test('keeps an existing token, fills an empty one without touching other lines, and reads ports from .env', () => {
    run([]);
    const token = /STATUS_API_TOKEN=(\w+)/.exec(dotEnv())?.[1];
    run([]);
    expect(/STATUS_API_TOKEN=(\w+)/.exec(dotEnv())?.[1]).toBe(token);

    writeFileSync(join(dir, '.env'), 'PORT=8088\nSTATUS_API_TOKEN=\nRABBITMQ_MANAGEMENT_PORT="15999"\n');
    const { out } = run(['--docker']);
    expect(dotEnv()).toMatch(
      /^PORT=8088\nRABBITMQ_MANAGEMENT_PORT="15999"\nSTATUS_API_TOKEN=[0-9a-f]{48}\n$/,
    );
    expect(out).toContain('http://localhost:8088/docs');
    expect(out).toContain('http://127.0.0.1:15999');
  });

  test('a token in the shell is enough: no .env is written; the shell wins over .env for ports', () => {
    const { status, out } = run(['--docker'], { STATUS_API_TOKEN: 't'.repeat(20), PORT: '9099' });
    expect(status, out).toBe(0);
    expect(existsSync(join(dir, '.env'))).toBe(false);
    expect(out).toContain('http://localhost:9099/api/v1');
  });

  test('an unhealthy container stops the wait with its state and the recent logs', () => {
    const { status, out } = run(['--docker'], { FAKE_HEALTH: 'unhealthy' });
    expect(status).toBe(1);
    expect(out).toContain('stack_c1_1 unhealthy');
    expect(out).toContain('the stack did not become healthy');
    expect(calls()).toContain('docker compose logs --tail 30');
  });

  test('--docker without an engine fails with what to do', () => {
    const { status, out } = run(['--docker'], { FAKE_INFO_STATUS: '1' });
    expect(status).toBe(1);
    expect(out).toContain(
      'no Docker engine answers (docker info failed): start one, or use ./run.sh --local',
    );
    expect(calls()).toEqual(['docker info']);
  });
});
