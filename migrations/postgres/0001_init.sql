-- Articula schema, PostgreSQL. The SQLite tree has a file of the same name with the same meaning.
-- Never edit an applied migration: add a new one.
-- Ids are UUID text; times are milliseconds since the Unix epoch (UTC).

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('clinic', 'lab')),
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX orgs_kind_name ON orgs (kind, name);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('active', 'invited', 'revoked')),
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id     TEXT NOT NULL REFERENCES users (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    role        TEXT NOT NULL CHECK (role IN ('doctor', 'clinic_admin', 'lab_tech', 'lab_admin', 'owner', 'auditor')),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (user_id, org_id, role)
);
CREATE INDEX memberships_org ON memberships (org_id, role);

CREATE TABLE invitations (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    portal          TEXT NOT NULL CHECK (portal IN ('clinic', 'lab')),
    device          TEXT NOT NULL,
    ip              TEXT NOT NULL,
    csrf_token      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX tokens_session ON tokens (session_id);

-- Revocations for other processes (CLI, other nodes) to pick up; the server tails this table.
CREATE TABLE revocations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT NOT NULL,
    session_id  TEXT,
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL
);

CREATE TABLE cases (
    id                  TEXT PRIMARY KEY,
    clinic_id           TEXT NOT NULL REFERENCES orgs (id),
    doctor_id           TEXT NOT NULL REFERENCES users (id),
    lab_id              TEXT REFERENCES orgs (id),
    label               TEXT NOT NULL,
    status              TEXT NOT NULL,
    status_before_hold  TEXT,
    due_date            TEXT,
    created_at          BIGINT NOT NULL,
    last_activity       BIGINT NOT NULL,
    last_seq            BIGINT NOT NULL,
    rx_version          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX cases_clinic ON cases (clinic_id, last_activity);
CREATE INDEX cases_doctor ON cases (doctor_id, last_activity);
CREATE INDEX cases_lab ON cases (lab_id, last_activity);

-- The event log: the source of truth of every case. (case_id, seq) is gapless from 1.
CREATE TABLE events (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    data       TEXT NOT NULL,
    client_id  TEXT,
    PRIMARY KEY (case_id, seq)
);

-- Projections, written in the same transaction as the events they derive from.
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    seq          BIGINT NOT NULL,
    author_id    TEXT NOT NULL,
    text         TEXT NOT NULL,
    attachments  TEXT NOT NULL DEFAULT '[]',
    reply_to     TEXT,
    created_at   BIGINT NOT NULL,
    edited_at    BIGINT,
    deleted_at   BIGINT
);
CREATE INDEX messages_case ON messages (case_id, seq);

CREATE TABLE rx_fields (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    field       TEXT NOT NULL,
    value       TEXT,
    version     BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (case_id, field)
);

CREATE TABLE rx_proposals (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    seq          BIGINT NOT NULL,
    proposed_by  TEXT NOT NULL,
    changes      TEXT NOT NULL,
    note         TEXT,
    status       TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'declined')),
    decided_by   TEXT,
    decided_at   BIGINT,
    comment      TEXT
);
CREATE INDEX rx_proposals_case ON rx_proposals (case_id);

CREATE TABLE approvals (
    id                TEXT PRIMARY KEY,
    case_id           TEXT NOT NULL REFERENCES cases (id),
    seq               BIGINT NOT NULL,
    file_id           TEXT NOT NULL,
    file_sha256       TEXT NOT NULL,
    rx_version        BIGINT NOT NULL,
    requested_by      TEXT NOT NULL,
    requested_at      BIGINT NOT NULL,
    comment           TEXT,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'voided')),
    decided_by        TEXT,
    decided_at        BIGINT,
    decision_comment  TEXT,
    voided_seq        BIGINT
);
CREATE INDEX approvals_case ON approvals (case_id);

CREATE TABLE read_marks (
    case_id  TEXT NOT NULL REFERENCES cases (id),
    user_id  TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
