-- Up Migration

-- The counters' slot is the writing transaction's id modulo 64, not its connection's pid modulo 8.
-- Two transactions on one slot that change the same status and priority wait for each other's commit
-- (ON CONFLICT DO UPDATE of one counter row): with pid % 8, connections of a pool of 10 shared slots
-- for good, and in the latency benchmark the reports and records spent their time waiting on
-- another transaction's commit (pg_stat_activity: Lock/transactionid). Transactions running at once
-- have nearby ids, so they land on distinct slots; a transaction keeps one slot for all its
-- statements. Readers sum the slots as before.
CREATE FUNCTION task_counts_slot() RETURNS smallint LANGUAGE sql VOLATILE AS $$
  SELECT (txid_current() % 64)::smallint
$$;

-- The body of 1796600000000_operator.sql but for its first line, which now asks task_counts_slot().
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

-- Down Migration

-- The slots of before, behind the same function: the trigger keeps calling it.
CREATE OR REPLACE FUNCTION task_counts_slot() RETURNS smallint LANGUAGE sql VOLATILE AS $$
  SELECT (pg_backend_pid() % 8)::smallint
$$;
