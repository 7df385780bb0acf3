-- Up Migration

-- The operator's list pages newest (or oldest) first by (created_at, id), a keyset that never needs
-- OFFSET; retention walks it from the oldest end (a task finishes after it is created, so nothing
-- past the cut-off's created_at can be old enough to delete). Costs the write path one index entry per
-- insert and per non-HOT update (recording as sent and reports already change status, a column of
-- the partial indexes' predicates, so they are not HOT anyway). Measured in BENCHMARKS.md.
CREATE INDEX tasks_created ON tasks (created_at, id);

-- Failed tasks, newest first: what the operator reads and redrives. Rows enter it only when a task
-- fails for good, so it stays as small as the failures and costs the drain next to nothing.
CREATE INDEX tasks_error ON tasks (created_at, id) WHERE status = 'error';

-- What each redrive did, the only part of a task's history its row forgets (a redrive clears error,
-- sent_at and finished_at). Written by redrives alone: creating, claiming, sending and reporting
-- write nothing here. Deleted with the task (retention).
CREATE TABLE task_redrives (
  task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  redriven_at  timestamptz NOT NULL DEFAULT now(),
  -- The state the redrive left: status, attempt, error and times as they were.
  from_status  text NOT NULL,
  attempt      integer NOT NULL,
  error        text,
  sent_at      timestamptz,
  finished_at  timestamptz
);
CREATE INDEX task_redrives_task ON task_redrives (task_id, redriven_at);

-- Counts by status and priority, kept by the statements that change them (the statement-level
-- triggers below), so the operator's stats never count the table. Each connection adds to its own
-- slot (backend pid modulo 8): concurrent statements of the API, the dispatcher and the reporters
-- seldom wait on one another's counter rows. A reader sums the slots.
CREATE TABLE task_counts (
  status    text NOT NULL,
  priority  task_priority NOT NULL,
  slot      smallint NOT NULL,
  count     bigint NOT NULL,
  PRIMARY KEY (status, priority, slot)
);

-- Tasks created and finished per minute, kept the same way; the retention job prunes old minutes.
CREATE TABLE task_throughput (
  minute    timestamptz NOT NULL,
  slot      smallint NOT NULL,
  created   bigint NOT NULL DEFAULT 0,
  finished  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (minute, slot)
);

-- One function for the three triggers: `old_rows` and `new_rows` are the statement's transition
-- tables (PostgreSQL allows transition tables only on single-event triggers, hence three triggers).
-- A statement that changes no status (a claim: lease and attempt only) nets to zero and writes nothing.
-- "Finished" counts rows this transaction gave a finished_at (reports set it to now()).
CREATE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s smallint := pg_backend_pid() % 8;
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

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
CREATE TRIGGER task_counts_update AFTER UPDATE ON tasks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();

-- The triggers exist before this count, and creating them locked out writes until this transaction
-- commits: no change is counted twice or missed. One full count, once (seconds at 10 million rows).
INSERT INTO task_counts (status, priority, slot, count)
SELECT status, priority, 0, count(*) FROM tasks GROUP BY status, priority;

-- Down Migration

DROP TRIGGER task_counts_delete ON tasks;
DROP TRIGGER task_counts_update ON tasks;
DROP TRIGGER task_counts_insert ON tasks;
DROP FUNCTION task_counts_apply();
DROP TABLE task_throughput;
DROP TABLE task_counts;
DROP TABLE task_redrives;
DROP INDEX tasks_error;
DROP INDEX tasks_created;
