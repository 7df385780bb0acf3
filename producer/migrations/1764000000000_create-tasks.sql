-- Up Migration

-- Declaration order is claim order: ORDER BY priority takes high first.
CREATE TYPE task_priority AS ENUM ('high', 'medium', 'low');

CREATE TABLE tasks (
  id               uuid PRIMARY KEY,
  text             text NOT NULL,
  priority         task_priority NOT NULL DEFAULT 'medium',
  status           text NOT NULL DEFAULT 'waiting'
                   CONSTRAINT tasks_status_check CHECK (status IN ('waiting', 'sent', 'success', 'error')),
  -- The dispatch number: incremented by every claim and every redrive; reports are fenced by it.
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  error            text,
  -- Claim lease: a waiting row whose lease is in the future belongs to a dispatcher right now.
  claimed_until    timestamptz,
  idempotency_key  text,
  -- Hash of the request body that first used idempotency_key: a different body under the same key is a 422.
  request_hash     bytea,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  finished_at      timestamptz
);

CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Random claim order: start at a random UUID within a priority and wrap. Only waiting rows are
-- indexed, so the index stays as small as the backlog however many tasks are finished.
CREATE INDEX tasks_claim_random ON tasks (priority, id) WHERE status = 'waiting';

-- FIFO claim order (DISPATCH_ORDER=fifo).
CREATE INDEX tasks_claim_fifo ON tasks (priority, created_at) WHERE status = 'waiting';

-- In-flight count for back-pressure and the age of the oldest sent task (a lost message shows here).
CREATE INDEX tasks_sent ON tasks (sent_at) WHERE status = 'sent';

-- Down Migration

DROP TABLE tasks;
DROP TYPE task_priority;
