-- Up Migration

-- Tasks each dispatcher has claimed and not yet recorded, plus the share of the room it may still
-- claim before it counts again: with the `sent` count, the in-flight figure that
-- DISPATCH_MAX_IN_FLIGHT caps across replicas (producer/src/dispatch/in-flight.ts). Claimed rows are
-- not counted in tasks itself: that needs an index on claimed_until, which every claim would then
-- have to update (claims are HOT updates today). Each dispatcher writes only its own row, at each
-- count; a row stops counting at expires_at (a lease and a second after it was written), so the
-- claims of a dispatcher that died count as long as their leases hold them.
CREATE TABLE dispatcher_claims (
  dispatcher_id uuid PRIMARY KEY,
  claimed       integer NOT NULL CHECK (claimed >= 0),
  expires_at    timestamptz NOT NULL
);

-- Down Migration

DROP TABLE dispatcher_claims;
