-- Up Migration

-- The counter rows a statement changes are upserted in one order, status then priority, in every
-- statement: each upsert locks its row until the transaction ends, and two transactions on the same
-- slot (ids 64 apart, both still running) that took two shared rows in opposite orders deadlocked,
-- and PostgreSQL aborted one of them: GROUP BY alone hands out its groups in an order that depends on
-- the plan (a hash aggregate's, on the hash table's size). task-counts.test.ts puts every transaction
-- on one slot to show it.
CREATE OR REPLACE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s smallint := task_counts_slot();
  m timestamptz := date_trunc('minute', now());
  created bigint := 0;
  finished bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, count(*) FROM new_rows GROUP BY status, priority ORDER BY status, priority
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
    SELECT count(*) INTO created FROM new_rows;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, -count(*) FROM old_rows GROUP BY status, priority ORDER BY status, priority
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
  ELSE
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, sum(d) FROM (
      SELECT status, priority, 1 AS d FROM new_rows
      UNION ALL
      SELECT status, priority, -1 FROM old_rows
    ) c GROUP BY status, priority HAVING sum(d) <> 0 ORDER BY status, priority
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
    SELECT count(*) INTO finished FROM new_rows
     WHERE status IN ('success', 'error') AND finished_at = now();
  END IF;
  IF created > 0 OR finished > 0 THEN
    INSERT INTO task_throughput (minute, slot, created, finished) VALUES (m, s, created, finished)
    ON CONFLICT (minute, slot) DO UPDATE
      SET created = task_throughput.created + excluded.created,
          finished = task_throughput.finished + excluded.finished;
  END IF;
  RETURN NULL;
END $$;

-- Down Migration

CREATE OR REPLACE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s smallint := task_counts_slot();
  m timestamptz := date_trunc('minute', now());
  created bigint := 0;
  finished bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, count(*) FROM new_rows GROUP BY status, priority
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
    SELECT count(*) INTO created FROM new_rows;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, -count(*) FROM old_rows GROUP BY status, priority
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
  ELSE
    INSERT INTO task_counts (status, priority, slot, count)
    SELECT status, priority, s, sum(d) FROM (
      SELECT status, priority, 1 AS d FROM new_rows
      UNION ALL
      SELECT status, priority, -1 FROM old_rows
    ) c GROUP BY status, priority HAVING sum(d) <> 0
    ON CONFLICT (status, priority, slot) DO UPDATE SET count = task_counts.count + excluded.count;
    SELECT count(*) INTO finished FROM new_rows
     WHERE status IN ('success', 'error') AND finished_at = now();
  END IF;
  IF created > 0 OR finished > 0 THEN
    INSERT INTO task_throughput (minute, slot, created, finished) VALUES (m, s, created, finished)
    ON CONFLICT (minute, slot) DO UPDATE
      SET created = task_throughput.created + excluded.created,
          finished = task_throughput.finished + excluded.finished;
  END IF;
  RETURN NULL;
END $$;
