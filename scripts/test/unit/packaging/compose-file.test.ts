// docker-compose.yml and the Dockerfiles, read as data: the topology issue 5 asks for, and every
// variable handed to a service is one its config schema knows.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import type { z } from 'zod';
import { ConsumerEnvSchema } from '../../../../consumer/src/config.js';
import { ProducerEnvSchema } from '../../../../producer/src/config.js';
import { SERVICE_NODE_ARGS } from '../../../src/launcher/plan.js';

const root = new URL('../../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

interface ComposeService {
  image?: string;
  build?: string | { context: string; dockerfile?: string; target?: string };
  hostname?: string;
  init?: boolean;
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string | null>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  profiles?: string[];
  entrypoint?: string[];
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

function dockerfileOf(service: ComposeService): string | undefined {
  if (!service.build) return undefined;
  const build = typeof service.build === 'string' ? { context: service.build } : service.build;
  return `${build.context}/${build.dockerfile ?? 'Dockerfile'}`.replace(/^\.\//, '');
}

/** The last stage of a Dockerfile, where HEALTHCHECK, USER and CMD count. */
function finalStage(dockerfile: string): string {
  const text = read(dockerfile);
  return text.slice(text.lastIndexOf('\nFROM '));
}

type Shape = Record<string, z.ZodType>;
const schemaOf: Record<string, Shape> = {
  producer: ProducerEnvSchema.shape,
  consumer: ConsumerEnvSchema.shape,
  'consumer-high': ConsumerEnvSchema.shape,
};

describe('docker-compose.yml', () => {
  test('runs PostgreSQL, RabbitMQ, the producer behind HAProxy and two consumer replicas; the rest is opt-in', () => {
    expect(Object.keys(services).sort()).toEqual([
      'consumer',
      'consumer-high',
      'haproxy',
      'postgres',
      'producer',
      'rabbitmq',
      'tasks',
    ]);
    expect(services.consumer?.deploy?.replicas).toBe(2);
    expect(services['consumer-high']?.profiles).toEqual(['high-only']);
    expect(services['consumer-high']?.environment?.WORKER_QUEUES).toBe('tasks.high');
    expect(services.tasks?.profiles).toEqual(['tools']);
    for (const name of ['postgres', 'rabbitmq', 'producer', 'haproxy', 'consumer']) {
      expect(services[name]?.profiles, name).toBeUndefined();
    }
  });

  test('the tasks CLI runs in the stack against HAProxy, from the producer image’s build stage', () => {
    expect(services.tasks?.build).toEqual({
      context: '.',
      dockerfile: 'producer/Dockerfile',
      target: 'tasks-cli',
    });
    expect(services.tasks?.entrypoint?.slice(-3)).toEqual([
      'scripts/src/cli/create-tasks.ts',
      '--url',
      'http://haproxy:3000',
    ]);
  });

  test('every service has a healthcheck, in compose or in its Dockerfile', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.profiles?.includes('tools')) continue; // a command run by hand, not a service
      const dockerfile = dockerfileOf(service);
      const inDockerfile = dockerfile !== undefined && /^HEALTHCHECK /m.test(finalStage(dockerfile));
      expect(service.healthcheck !== undefined || inDockerfile, name).toBe(true);
    }
    expect(services.postgres?.healthcheck?.test).toEqual(
      expect.arrayContaining(['pg_isready', '-h', '127.0.0.1']),
    );
    expect(finalStage('producer/Dockerfile')).toContain('GET /health/ready');
  });

  test('services start in order of health: data stores, then producer, then HAProxy and consumers', () => {
    const healthy = { condition: 'service_healthy' };
    expect(services.producer?.depends_on).toEqual({ postgres: healthy, rabbitmq: healthy });
    expect(services.haproxy?.depends_on).toEqual({ producer: healthy });
    expect(services.consumer?.depends_on).toEqual({ rabbitmq: healthy, producer: healthy });
  });

  test('only the API (through HAProxy) and the management UI (on 127.0.0.1) reach the host', () => {
    const published = Object.entries(services).filter(([, s]) => s.ports !== undefined);
    expect(published.map(([name]) => name).sort()).toEqual(['haproxy', 'rabbitmq']);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation, not a JS template
    expect(services.haproxy?.ports).toEqual(['${PORT:-3000}:3000']);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation, not a JS template
    expect(services.rabbitmq?.ports).toEqual(['127.0.0.1:${RABBITMQ_MANAGEMENT_PORT:-15673}:15672']);
  });

  test('RabbitMQ keeps its node name and data across re-creation; PostgreSQL keeps its data', () => {
    expect(services.rabbitmq?.build).toBe('rabbitmq');
    expect(services.rabbitmq?.hostname).toBe('rabbitmq');
    expect(services.rabbitmq?.volumes).toEqual(['rabbitmq-data:/var/lib/rabbitmq']);
    expect(services.postgres?.volumes).toEqual(['postgres-data:/var/lib/postgresql/data']);
    expect(Object.keys(compose.volumes).sort()).toEqual(['postgres-data', 'rabbitmq-data']);
  });

  test('app services run under an init that forwards SIGTERM', () => {
    for (const name of ['producer', 'haproxy', 'consumer', 'consumer-high', 'tasks'])
      expect(services[name]?.init, name).toBe(true);
  });

  test.each(Object.keys(schemaOf))(
    '%s: every variable is known to its config schema, required ones are set',
    (name) => {
      const env = services[name]?.environment ?? {};
      const shape = schemaOf[name] as Shape;
      expect(Object.keys(env).filter((key) => !(key in shape))).toEqual([]);
      const required = Object.keys(shape).filter((key) => !shape[key]?.safeParse(undefined).success);
      expect(required).toEqual(['STATUS_API_TOKEN']);
      for (const key of required) expect(env[key], key).toMatch(/^\$\{STATUS_API_TOKEN:\?.+\}$/);
      // Literal values must be valid for the schema (interpolated and passed-through ones are checked at start).
      for (const [key, value] of Object.entries(env)) {
        if (value === null || value.includes('${')) continue;
        expect(shape[key]?.safeParse(value).success, `${key}=${value}`).toBe(true);
      }
    },
  );

  test('every variable the compose file interpolates is documented in .env.example', () => {
    const used = new Set(
      [...read('docker-compose.yml').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]),
    );
    const documented = new Set(
      [...read('.env.example').matchAll(/^(?:# )?([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]),
    );
    expect([...used].filter((name) => !documented.has(name))).toEqual([]);
  });
});

describe('Dockerfiles', () => {
  test.each(['producer', 'consumer'])(
    '%s: slim Node 24 stages, production deps, non-root, exec-form CMD',
    (name) => {
      const text = read(`${name}/Dockerfile`);
      const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
      // The producer's file also holds the tasks CLI's stage, built on its build stage.
      expect(froms.filter((from) => from !== 'build')).toEqual([
        'node:24-bookworm-slim',
        'node:24-bookworm-slim',
        'node:24-bookworm-slim',
      ]);
      expect(text).toContain(`npm ci --omit=dev --no-audit --no-fund -w @task-pipeline/${name}`);
      const last = finalStage(`${name}/Dockerfile`);
      expect(last).toMatch(/^USER node$/m);
      // A shell's /dev/tcp, not a node process per check: cheap enough to keep within the timeout.
      expect(last).toMatch(/^HEALTHCHECK .*\n\s+CMD \["bash", "-c", "exec 3<>\/dev\/tcp\/127\.0\.0\.1\//m);
      const entry = name === 'producer' ? 'dist/server.js' : 'dist/main.js';
      // The same flags as every local run and the benchmark.
      expect(last).toContain(
        `CMD ${JSON.stringify(['node', ...SERVICE_NODE_ARGS, entry])}`.replaceAll(',', ', '),
      );
    },
  );

  test('the build stage is shared byte for byte, so the second image reuses the first one’s layers', () => {
    const buildStage = (path: string) => /^FROM [\s\S]*?^RUN npm run build\n/m.exec(read(path))?.[0];
    expect(buildStage('producer/Dockerfile')).toMatch(/^FROM node:24-bookworm-slim AS build\n/);
    expect(buildStage('producer/Dockerfile')).toBe(buildStage('consumer/Dockerfile'));
  });

  test('every file the app Dockerfiles copy from the context passes .dockerignore', () => {
    const allowed = read('.dockerignore')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1));
    expect(read('.dockerignore')).toMatch(/^\*$/m);
    for (const path of allowed) expect(existsSync(new URL(path, root)), path).toBe(true);
    for (const name of ['producer', 'consumer']) {
      const copies = [...read(`${name}/Dockerfile`).matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
        (m[1] as string).split(' '),
      );
      for (const source of copies) {
        expect(
          allowed.some((entry) => source === entry || source.startsWith(`${entry}/`)),
          `${name}: ${source}`,
        ).toBe(true);
      }
    }
  });

  test('haproxy: Debian’s package on the slim base, non-root, DNS discovery of every producer replica', () => {
    const text = read('haproxy/Dockerfile');
    expect([...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1])).toEqual(['debian:bookworm-slim']);
    expect(text).toMatch(/apt-get install -y --no-install-recommends haproxy/);
    expect(text).toMatch(/^USER haproxy$/m);
    expect(text).toMatch(/^CMD \["haproxy", /m);
    const config = read('haproxy/haproxy.cfg');
    expect(config).toMatch(/^\s+server-template producer \d+ producer:3000$/m);
    expect(config).toMatch(/^\s+default-server .*resolvers compose/m);
    expect(config).toMatch(/^\s+option httpchk GET \/health\/ready$/m);
  });

  test('rabbitmq: a pinned 4.x management image with our config and plugins, no definitions at boot', () => {
    const text = read('rabbitmq/Dockerfile');
    expect([...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1])).toEqual([
      expect.stringMatching(/^rabbitmq:4\.\d+-management$/),
    ]);
    expect(text).toMatch(/^COPY .*rabbitmq\.conf enabled_plugins \/etc\/rabbitmq\/$/m);
    expect(text).not.toMatch(/^(COPY|ADD) .*definitions/m);
    expect(read('rabbitmq/rabbitmq.conf')).not.toMatch(/load_definitions/);
    expect(read('rabbitmq/enabled_plugins').trim()).toBe('[rabbitmq_management,rabbitmq_prometheus].');
  });
});
