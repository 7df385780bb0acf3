// A TCP proxy to PostgreSQL whose open connections can be made to go silent: what a query left pending
// by a restarting PostgreSQL looks like to the driver (the socket stays open, nothing answers).
import net from 'node:net';

export interface FreezingProxy {
  port: number;
  /** From now on the connections open now forward nothing, either way, and stay open. */
  freeze(): void;
  /** Bytes the client sent into frozen connections. */
  swallowedBytes(): number;
  close(): Promise<void>;
}

/** A TCP proxy to PostgreSQL whose existing connections can be made to go silent. */
export async function startFreezingProxy(target: URL): Promise<FreezingProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  let swallowed = 0;
  // Read now: the caller may go on to point the URL object at the proxy itself.
  const port = Number(target.port || 5432);
  const { hostname } = target;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, hostname);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on('data', (chunk) => {
      if (pair.frozen) swallowed += chunk.length;
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.frozen) client.write(chunk);
    });
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('close', close);
      socket.on('error', close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      for (const pair of pairs) pair.frozen = true;
    },
    swallowedBytes: () => swallowed,
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
