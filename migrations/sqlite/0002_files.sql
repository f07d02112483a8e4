-- Files: encryption keys, resumable uploads, stored files, downloads, transcriptions.
-- The PostgreSQL tree has a file of the same name with the same meaning.

-- One key per organisation (wrapped by the master key). Destroying it makes its files unreadable.
CREATE TABLE org_keys (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    wrapped        TEXT NOT NULL,
    master_key_id  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    destroyed_at   BIGINT
);
CREATE INDEX org_keys_org ON org_keys (org_id, created_at);

-- tus uploads in progress; their bytes (already encrypted) live in the data dir until complete.
CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    filename       TEXT NOT NULL,
    declared_type  TEXT,
    kind           TEXT,
    detected_type  TEXT,
    length         BIGINT NOT NULL,
    key_id         TEXT NOT NULL,
    wrapped_dek    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('receiving', 'done', 'refused', 'terminated', 'expired')),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    error          TEXT
);
CREATE INDEX uploads_expiry ON uploads (status, expires_at);

CREATE TABLE files (
    id             TEXT PRIMARY KEY,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    uploaded_by    TEXT NOT NULL REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    object_key     TEXT NOT NULL UNIQUE,
    stored_size    BIGINT NOT NULL,
    key_id         TEXT NOT NULL,
    wrapped_dek    TEXT NOT NULL,
    segments       TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('stored', 'ready')),
    seq            BIGINT
);
CREATE INDEX files_case ON files (case_id, created_at);

-- Every download, for the audit trail.
CREATE TABLE downloads (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id      TEXT NOT NULL REFERENCES files (id),
    case_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    ip           TEXT NOT NULL,
    range_start  BIGINT,
    range_end    BIGINT,
    at           BIGINT NOT NULL
);
CREATE INDEX downloads_file ON downloads (file_id);

-- Voice notes waiting for (or done with) their transcript.
CREATE TABLE transcriptions (
    file_id          TEXT PRIMARY KEY REFERENCES files (id),
    case_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX transcriptions_due ON transcriptions (status, next_attempt_at);
