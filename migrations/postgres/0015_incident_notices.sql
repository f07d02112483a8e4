-- Incident notices (issue 18): what happened, its scope and what users should do, published by
-- an owner for their organisation or by the operator (CLI) for every organisation (org_id NULL,
-- published_by NULL). Members see a notice until they acknowledge it; acknowledgements are kept.
-- The SQLite tree has a file of the same name with the same meaning.
CREATE TABLE notices (
    id            TEXT PRIMARY KEY,
    org_id        TEXT REFERENCES orgs (id),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    published_by  TEXT REFERENCES users (id),
    published_at  BIGINT NOT NULL
);
CREATE INDEX notices_org ON notices (org_id, published_at);

CREATE TABLE notice_acks (
    notice_id  TEXT NOT NULL REFERENCES notices (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    acked_at   BIGINT NOT NULL,
    PRIMARY KEY (notice_id, user_id)
);
CREATE INDEX notice_acks_user ON notice_acks (user_id);
