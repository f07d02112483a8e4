-- Full-text search (issue 19): one row per searchable text — a case's label, a chat message's
-- current text, an Rx value or proposal note, a listed file's name, a person's or organisation's
-- name — kept by triggers on the projections, which the group commit writes in the same
-- transaction as the events they derive from, so the index never disagrees with the log.
-- A deleted message's row is removed; an edited one is replaced. People (users, organisations)
-- have no case: a query joins them to the cases they are the doctor, clinic or lab of.
-- Text is matched as a tsvector of the 'simple' configuration (no stemming: clinics write
-- Spanish and English) over search_fold(body): lower case, Latin diacritics removed ("Muñoz" is
-- found by "munoz", like SQLite's unicode61 remove_diacritics), punctuation as spaces. The SQLite
-- tree has a file of the same name with the same meaning (FTS5).
CREATE FUNCTION search_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(
        translate(lower(t),
            'àáâãäåçèéêëìíîïñòóôõöùúûüýÿāăąćĉċčďēĕėęěĝğġģĥĩīĭįĵķĺļľńņňōŏőŕŗřśŝşšţťũūŭůűųŵŷźżžơưǎǐǒǔǖǘǚǜǟǡǧǩǫǭǰǵǹǻȁȃȅȇȉȋȍȏȑȓȕȗșțȟȧȩȫȭȯȱȳ',
            'aaaaaaceeeeiiiinooooouuuuyyaaaccccdeeeeegggghiiiijklllnnnooorrrssssttuuuuuuwyzzzouaiouuuuuaagkoojgnaaaeeiioorruusthaeooooy'),
        '[^[:alnum:]]+', ' ', 'g')
$$;

CREATE TABLE search_docs (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('label', 'message', 'rx', 'file', 'person')),
    -- The case for label, message, rx, file; the user or organisation for person.
    ref_id   TEXT NOT NULL,
    case_id  TEXT,
    -- Rx field path (rx values), NULL otherwise.
    field    TEXT,
    seq      BIGINT,
    at       BIGINT NOT NULL,
    body     TEXT NOT NULL,
    tsv      tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_fold(body))) STORED
);
CREATE UNIQUE INDEX search_docs_ref ON search_docs (kind, ref_id, COALESCE(field, ''));
CREATE INDEX search_docs_case ON search_docs (case_id);
CREATE INDEX search_docs_tsv ON search_docs USING GIN (tsv);

-- Labels.
CREATE FUNCTION search_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_docs (kind, ref_id, case_id, at, body) VALUES ('label', NEW.id, NEW.id, NEW.created_at, NEW.label);
    ELSE
        UPDATE search_docs SET body = NEW.label WHERE kind = 'label' AND ref_id = NEW.id AND field IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER search_case_ai AFTER INSERT ON cases FOR EACH ROW EXECUTE FUNCTION search_case();
CREATE TRIGGER search_case_au AFTER UPDATE OF label ON cases FOR EACH ROW
    WHEN (OLD.label IS DISTINCT FROM NEW.label) EXECUTE FUNCTION search_case();

-- Chat messages: the current text of messages not deleted.
CREATE FUNCTION search_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM search_docs WHERE kind = 'message' AND ref_id = NEW.id AND field IS NULL;
    END IF;
    IF NEW.deleted_at IS NULL AND NEW.text <> '' THEN
        INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
        VALUES ('message', NEW.id, NEW.case_id, NEW.seq, NEW.created_at, NEW.text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER search_message_ai AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION search_message();
CREATE TRIGGER search_message_au AFTER UPDATE OF text, deleted_at ON messages FOR EACH ROW EXECUTE FUNCTION search_message();

-- Rx values (ref_id: the case, field: the path) and proposal notes (ref_id: the proposal).
CREATE FUNCTION search_rx() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM search_docs WHERE kind = 'rx' AND ref_id = NEW.case_id AND field = NEW.field;
    END IF;
    IF NEW.value IS NOT NULL AND NEW.value <> '' THEN
        INSERT INTO search_docs (kind, ref_id, case_id, field, seq, at, body)
        VALUES ('rx', NEW.case_id, NEW.case_id, NEW.field, NEW.version, NEW.updated_at, NEW.value);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER search_rx_ai AFTER INSERT ON rx_fields FOR EACH ROW EXECUTE FUNCTION search_rx();
CREATE TRIGGER search_rx_au AFTER UPDATE OF value ON rx_fields FOR EACH ROW EXECUTE FUNCTION search_rx();

CREATE FUNCTION search_proposal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.note IS NOT NULL AND NEW.note <> '' THEN
        INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
        SELECT 'rx', NEW.id, NEW.case_id, NEW.seq,
            COALESCE((SELECT e.at FROM events e WHERE e.case_id = NEW.case_id AND e.seq = NEW.seq), 0), NEW.note;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER search_proposal_ai AFTER INSERT ON rx_proposals FOR EACH ROW EXECUTE FUNCTION search_proposal();

-- File names, once the file is listed (its file_added event is durable).
CREATE FUNCTION search_file() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_docs (kind, ref_id, case_id, seq, at, body)
    VALUES ('file', NEW.id, NEW.case_id, NEW.seq, NEW.created_at, NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER search_file_au AFTER UPDATE OF status ON files FOR EACH ROW
    WHEN (NEW.status = 'ready' AND OLD.status <> 'ready') EXECUTE FUNCTION search_file();

-- People: users (doctors) and organisations (clinics, labs).
CREATE FUNCTION search_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_docs (kind, ref_id, at, body) VALUES ('person', NEW.id, NEW.created_at, NEW.name);
    ELSE
        UPDATE search_docs SET body = NEW.name WHERE kind = 'person' AND ref_id = NEW.id AND field IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER search_user_ai AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION search_person();
CREATE TRIGGER search_user_au AFTER UPDATE OF name ON users FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION search_person();
CREATE TRIGGER search_org_ai AFTER INSERT ON orgs FOR EACH ROW EXECUTE FUNCTION search_person();
CREATE TRIGGER search_org_au AFTER UPDATE OF name ON orgs FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION search_person();

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
