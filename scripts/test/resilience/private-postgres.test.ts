import { existsSync } from 'node:fs';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import { isAlive } from '@task-pipeline/testkit/private-process';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('private PostgreSQL', () => {
  let pg: PrivatePostgres;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
  });
  afterAll(async () => {
    await pg?.destroy();
  });

  const count = async () => {
    const sql = postgres(pg.url, { max: 1, onnotice: () => undefined });
    try {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from t`;
      return row?.n;
    } finally {
      await sql.end();
    }
  };

  it('runs on its own port, never the shared 5432', () => {
    expect(pg.port).not.toBe(5432);
    expect(pg.url).toContain(`:${pg.port}/`);
    expect(pg.pid()).toBeGreaterThan(0);
  });

  it('keeps committed rows through a restart and through a SIGKILL of the postmaster', async () => {
    const sql = postgres(pg.url, { max: 1, onnotice: () => undefined });
    await sql`create table t (id int primary key)`;
    await sql`insert into t select generate_series(1, 100)`;
    await sql.end();

    await pg.restart();
    expect(await count()).toBe(100);

    const before = pg.pid();
    await pg.kill();
    expect(pg.pid()).toBeUndefined();
    await pg.start();
    expect(pg.pid()).not.toBe(before);
    expect(await count()).toBe(100);
  });

  it('reports a dead connection to clients while stopped', async () => {
    await pg.stop();
    const sql = postgres(pg.url, { max: 1, connect_timeout: 2, onnotice: () => undefined });
    await expect(sql`select 1`).rejects.toThrow();
    await sql.end();
    await pg.start();
    expect(await count()).toBe(100);
  });

  it('destroy removes the cluster and its folder', async () => {
    const other = await startPrivatePostgres();
    const pid = other.pid();
    await other.destroy();
    expect(existsSync(other.dir)).toBe(false);
    expect(pid).toBeDefined();
    expect(isAlive(pid as number)).toBe(false);
  });
});
