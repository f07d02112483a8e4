-- The audit log (DESIGN §4, invariant 6): append-only, hash-chained per organisation.
-- The other tree has a file of the same name with the same meaning.

-- Who did a case event from where: the caller's address, for the audit entry of the event.
ALTER TABLE events ADD COLUMN ip TEXT;

-- Every committed event in commit order, with the organisations whose audit chains it belongs
-- to (the clinic always, the lab when the case is visible to it): the feed the audit actor
-- (and later the notification actor) tails from a stored checkpoint. Written in the same
-- transaction as the event.
CREATE TABLE event_feed (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    clinic_id  TEXT NOT NULL,
    lab_id     TEXT
);

-- What is audited but is not a case event (sign-ins, downloads, revocations…), durable from the
-- moment it happened, until the audit actor chains it (then it is deleted from here).
CREATE TABLE audit_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor_id   TEXT,
    ip         TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    case_id    TEXT,
    details    TEXT NOT NULL
);

-- How far each durable subscriber of the feed has got.
CREATE TABLE feed_checkpoints (
    subscriber  TEXT PRIMARY KEY,
    pos         BIGINT NOT NULL
);

-- The chain: entry n of an organisation, hash = SHA-256(prev_hash || canonical entry).
CREATE TABLE audit_entries (
    org_id     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor_id   TEXT,
    ip         TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    case_id    TEXT,
    details    TEXT NOT NULL,
    source     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (org_id, n)
);
-- One entry per source (a case event, an inbox row): replaying the feed cannot add a second.
CREATE UNIQUE INDEX audit_entries_source ON audit_entries (org_id, source);
CREATE INDEX audit_entries_at ON audit_entries (org_id, at);

-- The chain's head, recorded now and then: a log truncated at its end no longer reaches it.
CREATE TABLE audit_heads (
    org_id  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    hash    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, n)
);

-- Append-only: the database refuses to change or remove an entry or a recorded head.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_heads_no_update BEFORE UPDATE ON audit_heads
BEGIN SELECT RAISE(ABORT, 'audit heads are append-only'); END;
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN SELECT RAISE(ABORT, 'audit heads are append-only'); END;
