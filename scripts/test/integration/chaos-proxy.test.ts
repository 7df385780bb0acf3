import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PausableProxy, startPausableProxy } from '../../src/chaos/proxy.js';

const nextData = (socket: Socket, timeoutMs: number) =>
  new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => {
      socket.off('data', onData);
      resolve(undefined);
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(chunk.toString());
    };
    socket.once('data', onData);
  });

describe('pausable proxy (the partition injector)', () => {
  let echo: Server;
  let proxy: PausableProxy;

  beforeAll(async () => {
    echo = createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const address = echo.address();
    proxy = await startPausableProxy('127.0.0.1', address && typeof address === 'object' ? address.port : 0);
  });
  afterAll(async () => {
    await proxy.close();
    echo.close();
  });

  it('forwards, holds traffic while paused, and delivers it after resume', async () => {
    const before = connect(proxy.port, '127.0.0.1');
    await once(before, 'connect');
    before.write('hello');
    expect(await nextData(before, 2_000)).toBe('hello');

    proxy.pause();
    before.write('during');
    const during = connect(proxy.port, '127.0.0.1');
    await once(during, 'connect');
    during.write('new');
    expect(await nextData(before, 300)).toBeUndefined();
    expect(await nextData(during, 300)).toBeUndefined();

    const afterBefore = nextData(before, 2_000);
    const afterDuring = nextData(during, 2_000);
    const held = proxy.resume();
    expect(held.connectionsHeld).toBe(1);
    expect(held.bytesHeld).toBe('during'.length + 'new'.length);
    expect(await afterBefore).toBe('during');
    expect(await afterDuring).toBe('new');
    before.destroy();
    during.destroy();
  });
});
