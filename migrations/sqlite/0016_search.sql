-- Full-text search (issue 19): one row per searchable text — a case's label, a chat message's
-- current text, an Rx value or proposal note, a listed file's name, a person's or organisation's
-- name — kept by triggers on the projections, which the group commit writes in the same
-- transaction as the events they derive from, so the index never disagrees with the log.
-- A deleted message's row is removed; an edited one is replaced. People (users, organisations)
-- have no case: a query joins them to the cases they are the doctor, clinic or lab of.
-- Text is matched with SQLite's FTS5 (unicode61, diacritics removed: "Muñoz" is found by
-- "munoz"); the PostgreSQL tree has a file of the same name with the same meaning (tsvector).
CREATE TABLE search_docs (
    id       INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('label', 'message', 'rx', 'file', 'person')),
    -- The case for label, message, rx, file; the user or organisation for person.
    ref_id   TEXT NOT NULL,
    case_id  TEXT,
    -- Rx field path (rx values), NULL otherwise.
    field    TEXT,
    seq      BIGINT,
    at       BIGINT NOT NULL,
    body     TEXT NOT NULL
);
CREATE UNIQUE INDEX search_docs_ref ON search_docs (kind, ref_id, COALESCE(field, ''));
CREATE INDEX search_docs_case ON search_docs (case_id);

CREATE VIRTUAL TABLE search_fts USING fts5(
    body, content = 'search_docs', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER search_docs_au AFTER UPDATE OF body ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
END;

-- Labels.
CREATE TRIGGER search_case_ai AFTER INSERT ON cases BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, at, body) VALUES ('label', new.id, new.id, new.created_at, new.label);
END;
CREATE TRIGGER search_case_au AFTER UPDATE OF label ON cases WHEN old.label <> new.label BEGIN
    UPDATE search_docs SET body = new.label WHERE kind = 'label' AND ref_id = new.id AND field IS NULL;
END;

-- Chat messages: the current text of messages not deleted.
CREATE TRIGGER search_message_ai AFTER INSERT ON messages WHEN new.deleted_at IS NULL AND new.text <> '' BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    VALUES ('message', new.id, new.case_id, new.seq, new.created_at, new.text);
END;
CREATE TRIGGER search_message_au AFTER UPDATE OF text, deleted_at ON messages BEGIN
    DELETE FROM search_docs WHERE kind = 'message' AND ref_id = new.id AND field IS NULL;
    INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    SELECT 'message', new.id, new.case_id, new.seq, new.created_at, new.text
    WHERE new.deleted_at IS NULL AND new.text <> '';
END;

-- Rx values (ref_id: the case, field: the path) and proposal notes (ref_id: the proposal).
CREATE TRIGGER search_rx_ai AFTER INSERT ON rx_fields WHEN new.value IS NOT NULL AND new.value <> '' BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, field, seq, at, body)
    VALUES ('rx', new.case_id, new.case_id, new.field, new.version, new.updated_at, new.value);
END;
CREATE TRIGGER search_rx_au AFTER UPDATE OF value ON rx_fields BEGIN
    DELETE FROM search_docs WHERE kind = 'rx' AND ref_id = new.case_id AND field = new.field;
    INSERT INTO search_docs (kind, ref_id, case_id, field, seq, at, body)
    SELECT 'rx', new.case_id, new.case_id, new.field, new.version, new.updated_at, new.value
    WHERE new.value IS NOT NULL AND new.value <> '';
END;
CREATE TRIGGER search_proposal_ai AFTER INSERT ON rx_proposals WHEN new.note IS NOT NULL AND new.note <> '' BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    SELECT 'rx', new.id, new.case_id, new.seq, COALESCE((SELECT e.at FROM events e WHERE e.case_id = new.case_id AND e.seq = new.seq), 0), new.note;
END;

-- File names, once the file is listed (its file_added event is durable).
CREATE TRIGGER search_file_au AFTER UPDATE OF status ON files WHEN new.status = 'ready' AND old.status <> 'ready' BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    VALUES ('file', new.id, new.case_id, new.seq, new.created_at, new.name);
END;

-- People: users (doctors) and organisations (clinics, labs).
CREATE TRIGGER search_user_ai AFTER INSERT ON users BEGIN
    INSERT INTO search_docs (kind, ref_id, at, body) VALUES ('person', new.id, new.created_at, new.name);
END;
CREATE TRIGGER search_user_au AFTER UPDATE OF name ON users WHEN old.name <> new.name BEGIN
    UPDATE search_docs SET body = new.name WHERE kind = 'person' AND ref_id = new.id AND field IS NULL;
END;
CREATE TRIGGER search_org_ai AFTER INSERT ON orgs BEGIN
    INSERT INTO search_docs (kind, ref_id, at, body) VALUES ('person', new.id, new.created_at, new.name);
END;
CREATE TRIGGER search_org_au AFTER UPDATE OF name ON orgs WHEN old.name <> new.name BEGIN
    UPDATE search_docs SET body = new.name WHERE kind = 'person' AND ref_id = new.id AND field IS NULL;
END;

-- What existed before this migration.
INSERT INTO search_docs (kind, ref_id, case_id, at, body) SELECT 'label', id, id, created_at, label FROM cases;
INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    SELECT 'message', id, case_id, seq, created_at, text FROM messages WHERE deleted_at IS NULL AND text <> '';
INSERT INTO search_docs (kind, ref_id, case_id, field, seq, at, body)
    SELECT 'rx', case_id, case_id, field, version, updated_at, value FROM rx_fields WHERE value IS NOT NULL AND value <> '';
INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    SELECT 'rx', p.id, p.case_id, p.seq, COALESCE(e.at, 0), p.note FROM rx_proposals p
    LEFT JOIN events e ON e.case_id = p.case_id AND e.seq = p.seq WHERE p.note IS NOT NULL AND p.note <> '';
INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    SELECT 'file', id, case_id, seq, created_at, name FROM files WHERE status = 'ready';
INSERT INTO search_docs (kind, ref_id, at, body) SELECT 'person', id, created_at, name FROM users;
INSERT INTO search_docs (kind, ref_id, at, body) SELECT 'person', id, created_at, name FROM orgs;
