-- Up Migration

-- task_counts is now read by the dispatcher (its in-flight figure) and the gauges, not only by the
-- operator's stats: TRUNCATE tasks, which fires no row or UPDATE/DELETE trigger, empties the counters
-- with it instead of leaving them to describe rows that are gone. Statement-level, in the truncating
-- transaction: a rolled-back TRUNCATE keeps them.
CREATE FUNCTION task_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM task_counts;
  RETURN NULL;
END;
$$;

CREATE TRIGGER task_counts_truncate AFTER TRUNCATE ON tasks
  FOR EACH STATEMENT EXECUTE FUNCTION task_counts_truncate();

-- Down Migration

DROP TRIGGER task_counts_truncate ON tasks;
DROP FUNCTION task_counts_truncate();
