// A second RabbitMQ node on this machine for tests and scripts that restart or kill the broker
// (PROTOCOL §10: the shared node on 5672 is never touched). Own node name, AMQP and distribution
// ports, data/log/pid/config in a temp folder; runs as the `rabbitmq` account with its HOME so it
// shares the main node's Erlang cookie and `rabbitmqctl -n <node>` reaches it. Three such nodes
// joined into one cluster (startPrivateRabbitCluster) are what the failover tests kill nodes of: the
// shared cookie is what lets them join, each keeps its own ports, name and data folder.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import {
  freePort,
  isAlive,
  ownedTempDir,
  PrivateInstanceError,
  type RunResult,
  readPid,
  reapOnExit,
  runAs,
} from './private-process.js';

const ACCOUNT = 'rabbitmq';
const RABBITMQ_BIN = process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
// The Debian package keeps the cookie in the rabbitmq account's home.
const RABBITMQ_HOME = process.env.RABBITMQ_HOME_DIR ?? '/var/lib/rabbitmq';

export interface PrivateRabbit {
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string;
  readonly nodeName: string;
  readonly port: number;
  readonly dir: string;
  /** URL of a vhost on this node. */
  urlFor(vhost: string): string;
  /** OS pid of the running node, undefined when stopped. */
  pid(): number | undefined;
  /** `rabbitmqctl -n <node> ...args` */
  ctl(...args: string[]): Promise<RunResult>;
  start(): Promise<void>;
  /** Clean shutdown of the whole node; durable queues and persistent messages are kept. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILL the Erlang VM (a crash); the next start() recovers from disk. */
  kill(): Promise<void>;
  /** Stops whatever runs and removes the folder. */
  destroy(): Promise<void>;
}

export async function startPrivateRabbit(
  options: { nodeName?: string; advancedConfig?: string } = {},
): Promise<PrivateRabbit> {
  const port = await freePort();
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const nodeName = options.nodeName ?? `tp-${randomBytes(4).toString('hex')}@localhost`;
  const dir = ownedTempDir('tp-rmq-', ACCOUNT);
  const pidFile = join(dir, 'rabbit.pid');
  const unregister = reapOnExit(pidFile);

  const write = (name: string, text: string) => writeFileSync(join(dir, name), text, { mode: 0o644 });
  write('rabbitmq.conf', `listeners.tcp.local = 127.0.0.1:${port}\n`);
  // No plugins: the management plugin would want port 15672, which the shared node may hold.
  write('enabled_plugins', '[].\n');
  // Our own (empty) env file, so /etc/rabbitmq/rabbitmq-env.conf's NODENAME does not apply.
  write('rabbitmq-env.conf', '');
  if (options.advancedConfig !== undefined) write('advanced.config', options.advancedConfig);

  const env: Record<string, string> = {
    HOME: RABBITMQ_HOME,
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_FLAGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
  const ctl = (...args: string[]) =>
    runAs(ACCOUNT, join(RABBITMQ_BIN, 'rabbitmqctl'), ['-n', nodeName, ...args], {
      env: { HOME: RABBITMQ_HOME, ERL_EPMD_ADDRESS: '127.0.0.1' },
    });

  const pid = () => {
    const p = readPid(pidFile);
    return p !== undefined && isAlive(p) ? p : undefined;
  };

  const start = async () => {
    rmSync(pidFile, { force: true });
    await runAs(ACCOUNT, join(RABBITMQ_BIN, 'rabbitmq-server'), ['-detached'], { env });
    // The booting node creates its pid file and writes the pid in two steps; `rabbitmqctl wait`
    // fails at once (garbage_in_pid_file) if it reads between them, so the pid is awaited here first.
    await eventually('the RabbitMQ node to write its pid file', () => readPid(pidFile) !== undefined, {
      timeoutMs: 120_000,
    });
    // `wait <pidfile>` covers the window before the node registers with epmd, where await_startup
    // alone fails at once; it also gives up if the OS process dies during boot.
    await ctl('wait', '--timeout', '120', pidFile);
    await ctl('await_startup', '--timeout', '120');
  };

  const stop = async () => {
    const p = pid();
    if (p === undefined) return;
    await ctl('stop', pidFile);
    await eventually('the RabbitMQ node to exit', () => !isAlive(p), { timeoutMs: 60_000 });
  };

  const kill = async () => {
    const p = pid();
    if (p === undefined) throw new PrivateInstanceError('NOT_RUNNING', 'private RabbitMQ is not running');
    process.kill(p, 'SIGKILL');
    await eventually('the killed RabbitMQ node to exit', () => !isAlive(p), { timeoutMs: 10_000 });
  };

  try {
    await start();
  } catch (error) {
    const p = pid();
    if (p !== undefined) process.kill(p, 'SIGKILL');
    unregister();
    throw new PrivateInstanceError(
      'START_FAILED',
      `private RabbitMQ ${nodeName} did not start (logs: ${dir}/log)`,
      {
        cause: error,
      },
    );
  }

  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    nodeName,
    port,
    dir,
    urlFor: (vhost) => `amqp://guest:guest@127.0.0.1:${port}/${encodeURIComponent(vhost)}`,
    pid,
    ctl,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    kill,
    async destroy() {
      const p = pid();
      if (p !== undefined) {
        await ctl('stop', pidFile).catch(() => process.kill(p, 'SIGKILL'));
        await eventually('the RabbitMQ node to exit', () => !isAlive(p), { timeoutMs: 30_000 }).catch(() => {
          process.kill(p, 'SIGKILL');
        });
      }
      unregister();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivateRabbitCluster {
  readonly nodes: readonly PrivateRabbit[];
  /** Every node's URL, comma-separated: an AMQP_URL for the services. */
  readonly url: string;
  /** The same for a vhost. */
  urlFor(vhost: string): string;
  /** The node whose AMQP port is `port` (what a client's `host:port` names). */
  byPort(port: number): PrivateRabbit | undefined;
  /** `rabbitmqctl` on the first node that runs. */
  ctl(...args: string[]): Promise<RunResult>;
  /** Node name of each quorum queue's leader in a vhost (queues without a leader are left out). */
  leaders(vhost?: string): Promise<Map<string, string>>;
  destroy(): Promise<void>;
}

/**
 * A quorum queue dead-letters at-least-once through a worker on its leader, which re-sends what the
 * target queues did not confirm only after this timeout (3 min by default in 3.10). When a node dies,
 * the confirms of dead letters in flight to queues it led never come: a chaos run saw 1,803 retry
 * messages held for about 3 min after a node kill. 5 s keeps that short; a re-sent copy is one more
 * duplicate delivery, which the attempt fencing absorbs. The compose profile's nodes mount the same file.
 */
export const CLUSTER_ADVANCED_CONFIG = readFileSync(
  new URL('../../rabbitmq/cluster-advanced.config', import.meta.url),
  'utf8',
);

/**
 * `size` private nodes joined into one cluster: all boot at once as lone nodes, then each but the
 * first in turn stops its app, `join_cluster`s the first and starts again (joins one at a time: each
 * changes the cluster's schema). Three nodes formed a cluster in 18 s this way against 36 s booted
 * one after the other, on the 2-core machine otherwise idle.
 * A node killed or stopped later rejoins by itself when started: membership is kept in its data folder.
 */
export async function startPrivateRabbitCluster(size = 3): Promise<PrivateRabbitCluster> {
  const prefix = `tpc-${randomBytes(3).toString('hex')}`;
  const nodes: PrivateRabbit[] = [];
  const destroyAll = async () => {
    await Promise.all(nodes.map((node) => node.destroy().catch(() => undefined)));
  };
  try {
    const booted = await Promise.allSettled(
      Array.from({ length: size }, (_, i) =>
        startPrivateRabbit({
          nodeName: `${prefix}-${i + 1}@localhost`,
          advancedConfig: CLUSTER_ADVANCED_CONFIG,
        }),
      ),
    );
    for (const result of booted) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = booted.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const [first, ...others] = nodes as [PrivateRabbit, ...PrivateRabbit[]];
    for (const node of others) {
      await node.ctl('stop_app');
      await node.ctl('join_cluster', first.nodeName);
      await node.ctl('start_app');
      await node.ctl('await_startup', '--timeout', '120');
    }
  } catch (error) {
    await destroyAll();
    throw new PrivateInstanceError('START_FAILED', `private RabbitMQ cluster ${prefix} did not form`, {
      cause: error,
    });
  }
  const running = () => nodes.find((node) => node.pid() !== undefined);
  const ctl = (...args: string[]) => {
    const node = running();
    if (!node) throw new PrivateInstanceError('NOT_RUNNING', 'no node of the private cluster runs');
    return node.ctl(...args);
  };
  return {
    nodes,
    url: nodes.map((node) => node.url).join(','),
    urlFor: (vhost) => nodes.map((node) => node.urlFor(vhost)).join(','),
    byPort: (port) => nodes.find((node) => node.port === port),
    ctl,
    async leaders(vhost = '/') {
      const { stdout } = await ctl(
        'list_queues',
        '-p',
        vhost,
        '--quiet',
        '--no-table-headers',
        'name',
        'leader',
      );
      const leaders = new Map<string, string>();
      for (const line of stdout.split('\n')) {
        const [name, leader] = line.trim().split(/\s+/);
        if (name && leader?.includes('@')) leaders.set(name, leader);
      }
      return leaders;
    },
    destroy: destroyAll,
  };
}
