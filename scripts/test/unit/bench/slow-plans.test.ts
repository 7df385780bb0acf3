import { describe, expect, test } from 'vitest';
import { slowPlans } from '../../../src/bench/slow-plans.js';

// Lines as auto_explain writes them (log_analyze on) into the server log, between other entries.
const LOG = [
  '2026-12-07 05:47:13.763 UTC [6421] LOG:  database system is ready to accept connections',
  '2026-12-07 05:47:23.451 UTC [6646] LOG:  duration: 16.665 ms  plan:',
  '\tQuery Text: ',
  '\t      with r as (',
  '\t        select * from jsonb_to_recordset($1) as r(id uuid)',
  '\t      )',
  '\t      select id from tasks where id in (select id from r)',
  '\tMerge Semi Join  (cost=5.60..171.90 rows=100 width=16) (actual time=9.1..16.6 rows=6 loops=1)',
  '\t  ->  Index Scan using tasks_pkey on tasks  (cost=0.28..162.68 rows=960 width=16) (actual time=0.01..16.1 rows=15994 loops=1)',
  '2026-12-07 05:47:40.046 UTC [6643] LOG:  duration: 45.290 ms  plan:',
  '\tQuery Text: ',
  '\t      with r as (',
  '\t        select * from jsonb_to_recordset($1) as r(id uuid)',
  '\t      )',
  '\t      select id from tasks where id in (select id from r)',
  '\tMerge Semi Join  (cost=5.60..171.90 rows=100 width=16) (actual time=35.5..45.2 rows=8 loops=1)',
  '\t  ->  Index Scan using tasks_pkey on tasks  (cost=0.28..162.68 rows=960 width=16) (actual time=0.01..44.1 rows=19479 loops=1)',
  '2026-12-07 05:47:53.881 UTC [6644] LOG:  duration: 16.963 ms  plan:',
  '\tQuery Text: INSERT INTO task_counts (status, priority, slot, count)',
  '\t    SELECT status, priority, s, sum(d) FROM new_rows GROUP BY status, priority',
  '\tInsert on task_counts  (cost=0.46..0.76 rows=0 width=0) (actual time=16.960..16.962 rows=0 loops=1)',
  '\t  Conflict Resolution: UPDATE',
  '2026-12-07 05:48:02.000 UTC [6421] LOG:  checkpoint starting: time',
].join('\n');

describe('slowPlans', () => {
  test('groups the entries by statement, most runs first, with the slowest run of each', () => {
    const slow = slowPlans(LOG);
    expect(slow.map((s) => [s.query, s.runs, s.slowestMs])).toEqual([
      [
        'with r as ( select * from jsonb_to_recordset($1) as r(id uuid) ) select id from tasks where id in (select id from r)',
        2,
        45.29,
      ],
      [
        'INSERT INTO task_counts (status, priority, slot, count) SELECT status, priority, s, sum(d) FROM new_rows GROUP BY status, priority',
        1,
        16.963,
      ],
    ]);
    expect(slow[0]?.plan.split('\n')).toEqual([
      '\tMerge Semi Join  (cost=5.60..171.90 rows=100 width=16) (actual time=35.5..45.2 rows=8 loops=1)',
      '\t  ->  Index Scan using tasks_pkey on tasks  (cost=0.28..162.68 rows=960 width=16) (actual time=0.01..44.1 rows=19479 loops=1)',
    ]);
    expect(slow[1]?.plan).toContain('Conflict Resolution: UPDATE');
  });

  test('a log without auto_explain entries has no slow statements', () => {
    expect(slowPlans('2026-12-07 05:47:13.763 UTC [6421] LOG:  database system is ready')).toEqual([]);
  });
});
