// The three publish scripts as users call them, in --dry-run mode (no engine or registry needed):
// image names, registry, tag sources and their precedence, and the failures that stop them early.
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const shortSha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
  cwd: root,
  encoding: 'utf8',
}).trim();

function run(script: string, args: string[], env: Record<string, string> = {}) {
  const { REGISTRY: _r, TAG: _t, ...base } = process.env;
  // From another directory: the scripts must not depend on the caller's working directory.
  const result = spawnSync('bash', [`${root}${script}`, ...args], {
    cwd: tmpdir(),
    env: { ...base, ...env },
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.each([
  ['publish_producer.sh', 'task-pipeline-producer', '-f producer/Dockerfile', '.'],
  ['publish_consumer.sh', 'task-pipeline-consumer', '-f consumer/Dockerfile', '.'],
  ['publish_rabbit.sh', 'task-pipeline-rabbitmq', '-f rabbitmq/Dockerfile', 'rabbitmq'],
])('%s --dry-run', (script, image, dockerfile, context) => {
  test('prints the build and push of REGISTRY/IMAGE:TAG from flags', () => {
    const { status, stdout } = run(script, [
      '--dry-run',
      '--registry',
      'registry.example.com:5000/team/',
      '--tag',
      'v1.2.3',
    ]);
    expect(status).toBe(0);
    const ref = `registry.example.com:5000/team/${image}:v1.2.3`;
    // The first word is the engine: docker, unless only podman answers.
    const lines = stdout.trim().split('\n');
    expect(lines.map((line) => line.split(' ')[0])).toEqual([
      expect.stringMatching(/^(docker|podman)$/),
      lines[0]?.split(' ')[0],
    ]);
    expect(lines.map((line) => line.slice(line.indexOf(' ') + 1))).toEqual([
      `build ${dockerfile} -t ${ref} ${context}`,
      `push ${ref}`,
    ]);
  });

  test('takes REGISTRY and TAG from the environment; flags win; the tag defaults to the git short sha', () => {
    expect(run(script, ['--dry-run'], { REGISTRY: '127.0.0.1:5000', TAG: 'env-tag' }).stdout).toContain(
      ` push 127.0.0.1:5000/${image}:env-tag\n`,
    );
    expect(
      run(script, ['--dry-run', '--registry=flag.example', '--tag=flag-tag'], {
        REGISTRY: 'env.example',
        TAG: 'env-tag',
      }).stdout,
    ).toContain(` push flag.example/${image}:flag-tag\n`);
    expect(run(script, ['--dry-run', '--registry', '127.0.0.1:5000']).stdout).toContain(
      ` push 127.0.0.1:5000/${image}:${shortSha}\n`,
    );
  });

  test('fails fast and clearly without a registry, with a bad tag or an unknown flag', () => {
    const noRegistry = run(script, ['--dry-run']);
    expect(noRegistry.status).toBe(1);
    expect(noRegistry.stderr).toBe(
      `${script}: no registry: pass --registry HOST[:PORT][/NAMESPACE] or set REGISTRY\n`,
    );
    expect(noRegistry.stdout).toBe('');
    const badTag = run(script, ['--dry-run', '--registry', 'r.example', '--tag', 'no spaces']);
    expect(badTag.status).toBe(1);
    expect(badTag.stderr).toContain("invalid tag 'no spaces'");
    const unknown = run(script, ['--registry', 'r.example', '--push-everything']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown option --push-everything');
    expect(unknown.stderr).toContain(`Usage: ./${script}`);
  });

  test('--help explains registry, tag and dry run', () => {
    const { status, stdout } = run(script, ['--help']);
    expect(status).toBe(0);
    for (const word of ['--registry', '--tag', '--dry-run', 'git short sha', 'sudo'])
      expect(stdout).toContain(word);
  });
});

describe('publishing for real', () => {
  test('stops before building when no registry answers', () => {
    // Port 9 (discard) has no registry: with an engine, the registry check fails; without one, the
    // engine check does. Either way nothing is built and the message says why.
    const { status, stderr, stdout } = run('publish_rabbit.sh', [
      '--registry',
      '127.0.0.1:9',
      '--tag',
      'never',
    ]);
    expect(status).toBe(1);
    expect(stdout).not.toContain(' build ');
    expect(stderr).toMatch(/no registry answers at 127\.0\.0\.1:9|no container engine answers/);
  });
});
