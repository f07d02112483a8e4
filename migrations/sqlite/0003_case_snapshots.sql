-- Cases that live for years: snapshots of the case actor's state, so that starting a case reads
-- its latest snapshot and the events after it instead of its whole log; and exactly-once
-- command ids enforced by the database too (the case actor remembers only its latest ones).
-- The other tree has a file of the same name with the same meaning.

-- Digest of the command that created the event (16 hex digits), to tell a retry from another
-- command that reuses its id. NULL for events without a client id and events stored before.
ALTER TABLE events ADD COLUMN command_digest TEXT;

-- One event per (case, user, command id): the backstop of exactly-once retries.
CREATE UNIQUE INDEX events_client_id ON events (case_id, actor_id, client_id) WHERE client_id IS NOT NULL;

-- The latest snapshot of each case's state, written in the same transaction as the event of
-- `seq`. A snapshot of another `version` than the server's is ignored (and replaced).
CREATE TABLE case_snapshots (
    case_id  TEXT PRIMARY KEY REFERENCES cases (id),
    seq      BIGINT NOT NULL,
    version  BIGINT NOT NULL,
    data     TEXT NOT NULL,
    at       BIGINT NOT NULL
);
