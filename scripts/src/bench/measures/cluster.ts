// Measure 7: the cost of replication. The drain of measure 2 (producer + 2 consumers, no simulated
// work or failures, until every task is `success`) through a private single RabbitMQ node, then
// through a private cluster of three, in the same run: on the cluster every quorum queue has a
// replica on each node, and a publish is confirmed (a delivery acked) only once a majority has
// written it. Private nodes because the shared node may not be restarted or clustered (PROTOCOL §10),
// and so both sides run on the same fresh, empty broker setup; their CPU and memory are rows of their
// own. The database is the shared server, as in measure 2.
import {
  type PrivateRabbit,
  startPrivateRabbit,
  startPrivateRabbitCluster,
} from '@task-pipeline/testkit/private-rabbitmq';
import type { SampledProcess } from '../resources.js';
import type { ClusterResult } from '../results.js';
import { attempt, type MeasureContext } from './common.js';
import { oursDrain } from './drain.js';

export interface ClusterOptions {
  tasks: number;
  timeoutMs: number;
}

export const CLUSTER_SIZE = 3;

function nodeProcess(node: PrivateRabbit, name: string): SampledProcess {
  const pid = node.pid();
  if (pid === undefined) throw new Error(`private RabbitMQ ${node.nodeName} is not running`);
  return { name, pid };
}

export async function measureCluster(options: ClusterOptions, ctx: MeasureContext): Promise<ClusterResult> {
  let broker = 'RabbitMQ (version unknown)';
  const single = await attempt(ctx, 'cluster: single node', async () => {
    ctx.progress.log('starting a private RabbitMQ node');
    const node = await startPrivateRabbit();
    try {
      const version = (await node.ctl('version')).stdout.trim();
      if (version) broker = `RabbitMQ ${version}`;
      return await oursDrain(options.tasks, options.timeoutMs, ctx, 'drain, single node', {
        broker: { amqpUrl: node.url, nodes: [nodeProcess(node, 'rabbitmq node (beam.smp)')] },
      });
    } finally {
      await node.destroy();
    }
  });
  const cluster = await attempt(ctx, `cluster: ${CLUSTER_SIZE}-node cluster`, async () => {
    ctx.progress.log(`starting a private ${CLUSTER_SIZE}-node RabbitMQ cluster`);
    const nodes = await startPrivateRabbitCluster(CLUSTER_SIZE);
    try {
      return await oursDrain(options.tasks, options.timeoutMs, ctx, `drain, ${CLUSTER_SIZE}-node cluster`, {
        broker: {
          amqpUrl: nodes.url,
          nodes: nodes.nodes.map((node, i) => nodeProcess(node, `rabbitmq node ${i + 1} (beam.smp)`)),
        },
      });
    } finally {
      await nodes.destroy();
    }
  });
  return { broker, single, cluster };
}
