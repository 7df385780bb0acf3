// The system under chaos: private PostgreSQL and RabbitMQ (never the shared servers), the producer
// and two consumer replicas as local processes from source, and a pausable proxy on the consumers'
// path to the producer. Every process can be killed, stopped and started again on the same ports.
// With `brokerCluster`, RabbitMQ is a private 3-node cluster whose nodes every service is given
// (AMQP_URL lists all three) and a second producer runs beside the first.
import { randomBytes } from 'node:crypto';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import { freePort, type RunResult } from '@task-pipeline/testkit/private-process';
import {
  type PrivateRabbit,
  type PrivateRabbitCluster,
  startPrivateRabbit,
  startPrivateRabbitCluster,
} from '@task-pipeline/testkit/private-rabbitmq';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import postgres from 'postgres';
import { type PausableProxy, startPausableProxy } from './proxy.js';

export interface ClusterOptions {
  processingTimeMs: number;
  failureRate: number;
  maxRetries: number;
  retryDelaysSeconds: readonly number[];
  /**
   * Short leases make a killed producer's claims come back sooner; at least 2 × the confirm timeout +
   * 5 s (and above 3×), which the producer checks at start.
   */
  leaseSeconds: number;
  confirmTimeoutMs: number;
  logLevel: string;
  /** Three broker nodes in one cluster and two producers. */
  brokerCluster?: boolean;
}

/** One service slot: the process in it can die and be replaced, on the same ports and settings. */
export interface ManagedService {
  readonly name: string;
  readonly readyUrl: string;
  current(): Service | undefined;
  /** Starts a process and waits until it is ready. */
  start(): Promise<Service>;
  /** Sends `signal` and waits for the exit; returns how it ended. */
  signal(
    signal: 'SIGKILL' | 'SIGTERM',
    timeoutMs?: number,
  ): Promise<{ pid: number; exitCode: number | null }>;
  stop(): Promise<void>;
  /** Process starts so far (1 = never restarted). */
  starts(): number;
  /**
   * The process, when it exited although no fault or stop was acting on it: a crash. A supervisor
   * (compose's restart policy here) would restart it; the run does the same and reports it.
   */
  crashed(): Service | undefined;
  /** Log files of every process this slot ran, oldest first. */
  logs(): readonly string[];
}

export interface Cluster {
  pg: PrivatePostgres;
  /** The single node, or the first node of the broker cluster. */
  rabbit: PrivateRabbit;
  /** The broker cluster (`brokerCluster`). */
  brokers: PrivateRabbitCluster | undefined;
  /** What the services are given as AMQP_URL: one node, or every node of the cluster. */
  amqpUrl: string;
  /** `rabbitmqctl` on a node that runs. */
  rabbitCtl(...args: string[]): Promise<RunResult>;
  proxy: PausableProxy;
  databaseUrl: string;
  /** Producer A's URL: the consumers report to it (through the proxy). */
  producerUrl: string;
  /** Every producer's URL; clients spread creates over them. */
  producerUrls: readonly string[];
  token: string;
  /** Producer A: the one the faults kill. */
  producer: ManagedService;
  /** Every producer: A, and B with `brokerCluster`. */
  producers: readonly ManagedService[];
  consumers: readonly [ManagedService, ManagedService];
  consumerHealthUrls: readonly [string, string];
  /** Stops every process; `keep` leaves the private instances' folders for inspection. */
  close(options?: { keep?: boolean }): Promise<void>;
}

function managed(name: string, entry: string, env: Record<string, string>, readyUrl: string): ManagedService {
  let service: Service | undefined;
  let starts = 0;
  // True from a deliberate signal or stop until the next start is ready: an exit then is planned.
  let held = false;
  const logs: string[] = [];
  const waitExit = async (s: Service, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (s.exitCode() === undefined) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  };
  return {
    name,
    readyUrl,
    current: () => service,
    async start() {
      held = true;
      const s = startService(name, entry, env);
      service = s;
      starts += 1;
      logs.push(s.logPath);
      await waitForHttp(s, readyUrl, 120_000);
      held = false;
      return s;
    },
    async signal(signal, timeoutMs = 30_000) {
      const s = service;
      if (!s || s.exitCode() !== undefined) throw new Error(`${name} is not running`);
      held = true;
      process.kill(s.pid, signal);
      if (!(await waitExit(s, timeoutMs))) {
        process.kill(s.pid, 'SIGKILL');
        await waitExit(s, 10_000);
      }
      return { pid: s.pid, exitCode: s.exitCode() ?? null };
    },
    async stop() {
      held = true;
      await service?.stop();
    },
    starts: () => starts,
    crashed: () => (!held && service && service.exitCode() !== undefined ? service : undefined),
    logs: () => logs,
  };
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const pg = await startPrivatePostgres();
  let rabbit: PrivateRabbit | undefined;
  let brokers: PrivateRabbitCluster | undefined;
  let proxy: PausableProxy | undefined;
  const slots: ManagedService[] = [];
  try {
    if (options.brokerCluster) {
      brokers = await startPrivateRabbitCluster(3);
      rabbit = brokers.nodes[0] as PrivateRabbit;
    } else {
      rabbit = await startPrivateRabbit();
    }
    const amqpUrl = brokers?.url ?? rabbit.url;
    const admin = postgres(pg.url, { max: 1, onnotice: () => undefined });
    await admin`create database tasks`;
    await admin.end();
    const databaseUrl = pg.urlFor('tasks');
    const token = randomBytes(24).toString('hex');
    const producerPort = await freePort();
    const producerUrl = `http://127.0.0.1:${producerPort}`;
    proxy = await startPausableProxy('127.0.0.1', producerPort);

    const producerAt = (name: string, port: number) =>
      managed(
        name,
        'producer/src/server.ts',
        {
          PORT: String(port),
          HOST: '127.0.0.1',
          DATABASE_URL: databaseUrl,
          AMQP_URL: amqpUrl,
          STATUS_API_TOKEN: token,
          DISPATCH_LEASE_S: String(options.leaseSeconds),
          DISPATCH_CONFIRM_TIMEOUT_MS: String(options.confirmTimeoutMs),
          LOG_LEVEL: options.logLevel,
        },
        `http://127.0.0.1:${port}/health/ready`,
      );
    const producer = producerAt('producer', producerPort);
    const producers = [producer];
    if (options.brokerCluster) producers.push(producerAt('producer-b', await freePort()));
    const producerUrls = producers.map((p) => new URL(p.readyUrl).origin);
    const consumerEnv = {
      AMQP_URL: amqpUrl,
      PRODUCER_URL: proxy.url,
      STATUS_API_TOKEN: token,
      PROCESSING_TIME_MS: String(options.processingTimeMs),
      FAILURE_RATE: String(options.failureRate),
      MAX_RETRIES: String(options.maxRetries),
      RETRY_DELAYS_SECONDS: options.retryDelaysSeconds.join(','),
      LOG_LEVEL: options.logLevel,
    };
    const healthPorts = [await freePort(), await freePort()] as const;
    const consumerHealthUrls = [
      `http://127.0.0.1:${healthPorts[0]}`,
      `http://127.0.0.1:${healthPorts[1]}`,
    ] as const;
    const consumers = [
      managed(
        'consumer-a',
        'consumer/src/main.ts',
        { ...consumerEnv, HEALTH_PORT: String(healthPorts[0]) },
        `${consumerHealthUrls[0]}/health/ready`,
      ),
      managed(
        'consumer-b',
        'consumer/src/main.ts',
        { ...consumerEnv, HEALTH_PORT: String(healthPorts[1]) },
        `${consumerHealthUrls[1]}/health/ready`,
      ),
    ] as const;
    slots.push(...producers, ...consumers);
    // The first producer migrates the schema alone; the others start once it is ready.
    await producer.start();
    await Promise.all([...producers.slice(1), ...consumers].map((c) => c.start()));

    const [startedRabbit, startedProxy, startedBrokers] = [rabbit, proxy, brokers];
    return {
      pg,
      rabbit: startedRabbit,
      brokers: startedBrokers,
      amqpUrl,
      rabbitCtl: (...args) => (startedBrokers ? startedBrokers.ctl(...args) : startedRabbit.ctl(...args)),
      proxy: startedProxy,
      databaseUrl,
      producerUrl,
      producerUrls,
      token,
      producer,
      producers,
      consumers,
      consumerHealthUrls,
      async close({ keep = false } = {}) {
        await Promise.all([...producers, ...consumers].map((s) => s.stop()));
        await startedProxy.close();
        const nodes = startedBrokers?.nodes ?? [startedRabbit];
        if (keep) await Promise.all([pg.stop(), ...nodes.map((n) => n.stop())]);
        else await Promise.all([pg.destroy(), ...nodes.map((n) => n.destroy())]);
      },
    };
  } catch (error) {
    await Promise.all(slots.map((s) => s.stop()));
    await proxy?.close();
    if (brokers) await brokers.destroy();
    else await rabbit?.destroy();
    await pg.destroy();
    throw error;
  }
}
