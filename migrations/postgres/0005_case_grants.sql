-- Per-case grants (DESIGN §2): the projection of grant_given / grant_revoked / grant_expired
-- events, written in the same transaction; every read of a case checks it (with its end time).
-- The other tree has a file of the same name with the same meaning.
CREATE TABLE case_grants (
    case_id       TEXT NOT NULL REFERENCES cases (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    capabilities  TEXT NOT NULL,
    until         BIGINT,
    support       BOOLEAN NOT NULL DEFAULT FALSE,
    given_by      TEXT NOT NULL,
    given_at      BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_grants_user ON case_grants (user_id);
