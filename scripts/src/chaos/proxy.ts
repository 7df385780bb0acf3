// A TCP proxy between the consumers and the producer that can be cut like a network partition:
// while paused, bytes in both directions are held (a blackhole: clients see no error, only
// silence, and must time out on their own), new connections are accepted but not forwarded.
// Resuming delivers what was held, as TCP would after a partition heals.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface PartitionStats {
  /** Connections opened while paused. */
  connectionsHeld: number;
  /** Bytes from either side that waited for the partition to heal. */
  bytesHeld: number;
}

export interface PausableProxy {
  readonly port: number;
  readonly url: string;
  pause(): void;
  /** Heals the partition and returns what it held back. */
  resume(): PartitionStats;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream?: Socket;
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

export async function startPausableProxy(targetHost: string, targetPort: number): Promise<PausableProxy> {
  const links = new Set<Link>();
  let paused = false;
  let stats: PartitionStats = { connectionsHeld: 0, bytesHeld: 0 };

  const closeLink = (link: Link) => {
    if (!links.delete(link)) return;
    link.client.destroy();
    link.upstream?.destroy();
  };

  const openUpstream = (link: Link) => {
    const upstream = connect(targetPort, targetHost);
    link.upstream = upstream;
    upstream.on('data', (chunk: Buffer) => {
      if (paused) {
        link.held.toClient.push(chunk);
        stats.bytesHeld += chunk.length;
      } else link.client.write(chunk);
    });
    upstream.on('error', () => closeLink(link));
    upstream.on('close', () => closeLink(link));
    for (const chunk of link.held.toUpstream.splice(0)) upstream.write(chunk);
  };

  const server: Server = createServer((client) => {
    const link: Link = { client, held: { toUpstream: [], toClient: [] } };
    links.add(link);
    client.on('data', (chunk: Buffer) => {
      if (paused || !link.upstream) {
        link.held.toUpstream.push(chunk);
        if (paused) stats.bytesHeld += chunk.length;
      } else link.upstream.write(chunk);
    });
    client.on('error', () => closeLink(link));
    client.on('close', () => closeLink(link));
    if (paused) stats.connectionsHeld += 1;
    else openUpstream(link);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : 0;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pause() {
      paused = true;
      stats = { connectionsHeld: 0, bytesHeld: 0 };
    },
    resume() {
      paused = false;
      for (const link of links) {
        if (!link.upstream) openUpstream(link);
        else for (const chunk of link.held.toUpstream.splice(0)) link.upstream.write(chunk);
        for (const chunk of link.held.toClient.splice(0)) link.client.write(chunk);
      }
      return stats;
    },
    async close() {
      for (const link of links) closeLink(link);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
