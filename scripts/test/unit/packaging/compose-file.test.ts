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
  networks?: Record<string, { aliases?: string[] } | null>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const CLUSTER_NODES = ['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'];
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
  'producer-cluster': ProducerEnvSchema.shape,
  'consumer-cluster': ConsumerEnvSchema.shape,
};

describe('docker-compose.yml', () => {
  test('runs PostgreSQL, RabbitMQ, the producer behind HAProxy and two consumer replicas; the rest is opt-in', () => {
    expect(Object.keys(services).sort()).toEqual([
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
    // The cluster profile's HAProxy and first node publish the same ports: one stack runs at a time.
    expect(published.map(([name]) => name).sort()).toEqual([
      'haproxy',
      'haproxy-cluster',
      'rabbitmq',
      'rabbitmq-1',
    ]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation, not a JS template
    const api = '${PORT:-3000}:3000';
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation, not a JS template
    const ui = '127.0.0.1:${RABBITMQ_MANAGEMENT_PORT:-15673}:15672';
    for (const name of ['haproxy', 'haproxy-cluster']) expect(services[name]?.ports, name).toEqual([api]);
    for (const name of ['rabbitmq', 'rabbitmq-1']) expect(services[name]?.ports, name).toEqual([ui]);
  });

  test('RabbitMQ keeps its node name and data across re-creation; PostgreSQL keeps its data', () => {
    expect(services.rabbitmq?.build).toBe('rabbitmq');
    expect(services.rabbitmq?.hostname).toBe('rabbitmq');
    expect(services.rabbitmq?.volumes).toEqual(['rabbitmq-data:/var/lib/rabbitmq']);
    expect(services.postgres?.volumes).toEqual(['postgres-data:/var/lib/postgresql/data']);
    expect(Object.keys(compose.volumes).sort()).toEqual([
      'postgres-data',
      'rabbitmq-1-data',
      'rabbitmq-2-data',
      'rabbitmq-3-data',
      'rabbitmq-data',
    ]);
  });

  test('app services run under an init that forwards SIGTERM', () => {
    for (const name of [
      'producer',
      'haproxy',
      'consumer',
      'consumer-high',
      'tasks',
      'producer-cluster',
      'haproxy-cluster',
      'consumer-cluster',
    ])
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

describe('docker-compose.yml, profile cluster', () => {
  const clusterServices = Object.entries(services)
    .filter(([, s]) => s.profiles?.includes('cluster'))
    .map(([name]) => name);
  const conf = read('rabbitmq/cluster.conf');

  test('three broker nodes, two producers, HAProxy and two consumers, all in the profile only', () => {
    expect(clusterServices.sort()).toEqual([
      'consumer-cluster',
      'haproxy-cluster',
      'producer-cluster',
      ...CLUSTER_NODES,
    ]);
    for (const name of clusterServices) expect(services[name]?.profiles, name).toEqual(['cluster']);
    expect(services['producer-cluster']?.deploy?.replicas).toBe(2);
    expect(services['consumer-cluster']?.deploy?.replicas).toBe(2);
  });

  test('the nodes: the project image, fixed hostnames, a volume each, peer discovery from one mounted file', () => {
    for (const [i, name] of CLUSTER_NODES.entries()) {
      const node = services[name] as ComposeService;
      expect(node.build, name).toBe('rabbitmq');
      expect(node.hostname, name).toBe(name);
      expect(node.volumes, name).toEqual([
        `rabbitmq-${i + 1}-data:/var/lib/rabbitmq`,
        './rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/90-cluster.conf:ro',
        // Dead letters re-sent after 5 s when a node died with their confirms (the file says why).
        './rabbitmq/cluster-advanced.config:/etc/rabbitmq/advanced.config:ro',
      ]);
      // One cookie for every node: the Erlang distribution authenticates peers with it.
      expect(node.environment?.RABBITMQ_ERLANG_COOKIE, name).toMatch(
        /^\$\{RABBITMQ_ERLANG_COOKIE:-.{20,}\}$/,
      );
    }
    expect(conf).toMatch(/^cluster_formation\.peer_discovery_backend = classic_config$/m);
    const listed = [...conf.matchAll(/^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$/gm)].map(
      (m) => m[1],
    );
    expect(listed).toEqual(CLUSTER_NODES);
    expect(read('rabbitmq/cluster-advanced.config')).toMatch(
      /^\[\{rabbit, \[\{dead_letter_worker_publisher_confirm_timeout, 5000\}\]\}\]\.$/m,
    );
  });

  test('the second and third node join the first once it is up (RabbitMQ 3.10 cannot form a cluster from a simultaneous start)', () => {
    const healthy = { condition: 'service_healthy' };
    expect(services['rabbitmq-1']?.depends_on).toBeUndefined();
    expect(services['rabbitmq-2']?.depends_on).toEqual({ 'rabbitmq-1': healthy });
    expect(services['rabbitmq-3']?.depends_on).toEqual({ 'rabbitmq-1': healthy });
  });

  test('producers and consumers get every node in AMQP_URL and start once all three are healthy', () => {
    const healthy = { condition: 'service_healthy' };
    const nodes = Object.fromEntries(CLUSTER_NODES.map((n) => [n, healthy]));
    const url = CLUSTER_NODES.map((n) => `amqp://guest:guest@${n}:5672`).join(',');
    for (const name of ['producer-cluster', 'consumer-cluster']) {
      expect(services[name]?.environment?.AMQP_URL, name).toBe(url);
    }
    expect(services['producer-cluster']?.depends_on).toEqual({ postgres: healthy, ...nodes });
    expect(services['consumer-cluster']?.depends_on).toEqual({
      postgres: healthy,
      ...nodes,
      'producer-cluster': healthy,
    });
    expect(services['haproxy-cluster']?.depends_on).toEqual({ 'producer-cluster': healthy });
  });

  test('the same images and settings as the single-node stack, apart from AMQP_URL', () => {
    const { AMQP_URL: _p, ...producerEnv } = services['producer-cluster']?.environment ?? {};
    const { AMQP_URL: _c, ...consumerEnv } = services['consumer-cluster']?.environment ?? {};
    const { AMQP_URL: _sp, ...singleProducerEnv } = services.producer?.environment ?? {};
    const { AMQP_URL: _sc, ...singleConsumerEnv } = services.consumer?.environment ?? {};
    expect(producerEnv).toEqual(singleProducerEnv);
    expect(consumerEnv).toEqual(singleConsumerEnv);
    expect(services['producer-cluster']?.build).toEqual(services.producer?.build);
    expect(services['consumer-cluster']?.build).toEqual(services.consumer?.build);
    expect(services['haproxy-cluster']?.build).toBe(services.haproxy?.build);
  });

  test('HAProxy and the consumers find the cluster producers by the name they use in the single-node stack', () => {
    expect(services['producer-cluster']?.networks?.default?.aliases).toEqual(['producer']);
    // The tasks CLI targets http://haproxy:3000.
    expect(services['haproxy-cluster']?.networks?.default?.aliases).toEqual(['haproxy']);
  });
});

describe('Dockerfiles', () => {
  test.each(['producer', 'consumer'] as const)(
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
        `CMD ${JSON.stringify(['node', ...SERVICE_NODE_ARGS[name], entry])}`.replaceAll(',', ', '),
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
