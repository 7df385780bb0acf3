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
// every container reports, RUNNING_SERVICES which services `ps --services` lists as running.
const FAKE_DOCKER = `#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_LOG"
case "$1" in
  info) exit "\${FAKE_INFO_STATUS:-0}" ;;
  compose)
    shift
    [ "$2" = cluster ] && [ "$1" = --profile ] && shift 2
    case "$1" in
      version) exit 0 ;;
      ps)
        if [ "$2" = --services ]; then
          for s in \${FAKE_RUNNING_SERVICES:-}; do echo "$s"; done
        else
          printf 'c1\\nc2\\n'
        fi ;;
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
    for (const word of ['--docker', '--local', '--cluster', '.env', 'STATUS_API_TOKEN', 'Ctrl-C'])
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

  test('--cluster: the cluster profile by its service names, a random Erlang cookie, cluster commands printed', () => {
    const { status, out } = run(['--cluster']);
    expect(status, out).toBe(0);
    expect(dotEnv()).toMatch(/^STATUS_API_TOKEN=[0-9a-f]{48}$/m);
    expect(dotEnv()).toMatch(/^RABBITMQ_ERLANG_COOKIE=[0-9a-f]{48}$/m);
    expect(calls()).toContain(
      'docker compose --profile cluster up -d --build haproxy-cluster consumer-cluster',
    );
    expect(calls()).toContain('docker compose --profile cluster ps -q');
    expect(out).toContain('Task pipeline is up (profile cluster, docker compose,');
    expect(out).toContain('Try it        docker compose run --rm tasks 100');
    expect(out).toContain(
      'Cluster       docker compose --profile cluster exec rabbitmq-1 rabbitmqctl cluster_status',
    );
    expect(out).toContain('Stop          docker compose --profile cluster down');

    // A cookie already set is kept: the nodes of an existing cluster must keep agreeing.
    const cookie = /RABBITMQ_ERLANG_COOKIE=(\w+)/.exec(dotEnv())?.[1];
    run(['--cluster']);
    expect(/RABBITMQ_ERLANG_COOKIE=(\w+)/.exec(dotEnv())?.[1]).toBe(cookie);
    // The single-node stack needs no cookie.
    rmSync(join(dir, '.env'));
    run(['--docker']);
    expect(dotEnv()).not.toContain('RABBITMQ_ERLANG_COOKIE');
  });

  test('refuses to start one stack while the other runs (both publish the same ports), saying how to stop it', () => {
    const cluster = run(['--cluster'], { FAKE_RUNNING_SERVICES: 'postgres rabbitmq producer' });
    expect(cluster.status).toBe(1);
    expect(cluster.out).toContain(
      'the single-node stack is running (rabbitmq producer): stop it first with docker compose down',
    );
    const single = run(['--docker'], { FAKE_RUNNING_SERVICES: 'postgres rabbitmq-1 consumer-cluster' });
    expect(single.status).toBe(1);
    expect(single.out).toContain(
      'the cluster profile is running (rabbitmq-1 consumer-cluster): stop it first with docker compose --profile cluster down',
    );
    expect(calls().filter((c) => c.includes(' up '))).toEqual([]);
    // The same stack running again is no obstacle: up brings it to the current configuration.
    expect(run(['--cluster'], { FAKE_RUNNING_SERVICES: 'postgres rabbitmq-1' }).status).toBe(0);
  });

  test('--cluster with --local is refused', () => {
    const { status, out } = run(['--cluster', '--local']);
    expect(status).toBe(2);
    expect(out).toContain('--cluster runs containers: it does not go with --local');
    expect(calls()).toEqual([]);
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
