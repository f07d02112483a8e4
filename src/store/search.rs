//! Full-text search over the cases a user may see: labels, chat messages (current text, never a
//! deleted one), Rx values and proposal notes, file names, and the names of a case's doctor,
//! clinic and lab. The index (`search_docs`, migration 0016) is kept by triggers on the
//! projections, in the transaction of the events they derive from; FTS5 on SQLite, a `tsvector`
//! with a GIN index on PostgreSQL. Visibility is the rule of [`super::cases::visible`], inside
//! the query: a result, and the number of results, only ever come from cases the caller sees now.
//!
//! Words are matched by prefix (`marg` finds "margin"), all of them, without regard to case or
//! Latin diacritics. Queries are composed from constant fragments only; every value is bound.

use articula_protocol::CaseId;
use serde::Serialize;
use sqlx::Row;

use super::cases::visible;
use super::{Db, StoreError, parse};

/// At most this many words in a query.
pub const MAX_WORDS: usize = 8;
/// A word longer than this is cut (no word of a clinic's vocabulary is longer).
const MAX_WORD_CHARS: usize = 64;
/// Characters of context shown before the first match.
const SNIPPET_BEFORE: usize = 40;
/// Length of a snippet, in characters.
const SNIPPET_CHARS: usize = 160;

/// Latin letters with diacritics and their base letters, lower case: the same table as the
/// PostgreSQL migration's `search_fold` (SQLite's `remove_diacritics 2` folds the same letters).
const FOLD_FROM: &str = "àáâãäåçèéêëìíîïñòóôõöùúûüýÿāăąćĉċčďēĕėęěĝğġģĥĩīĭįĵķĺļľńņňōŏőŕŗřśŝşšţťũūŭůűųŵŷźżžơưǎǐǒǔǖǘǚǜǟǡǧǩǫǭǰǵǹǻȁȃȅȇȉȋȍȏȑȓȕȗșțȟȧȩȫȭȯȱȳ";
const FOLD_TO: &str = "aaaaaaceeeeiiiinooooouuuuyyaaaccccdeeeeegggghiiiijklllnnnooorrrssssttuuuuuuwyzzzouaiouuuuuaagkoojgnaaaeeiioorruusthaeooooy";

/// A word's comparable form: lower case, diacritics removed.
pub fn fold(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match FOLD_FROM.chars().position(|f| f == c) {
            Some(i) => FOLD_TO.chars().nth(i).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// The words of a text with their byte ranges: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(move |w| {
        // `split` hands out sub-slices of `text`: their offset is their distance from its start.
        (w.as_ptr() as usize - text.as_ptr() as usize, w)
    })
}

/// The words to look for in a query, folded; empty when it has none.
pub fn query_words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, w) in words(q) {
        let w: String = fold(w).chars().take(MAX_WORD_CHARS).collect();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// What matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// The case's label.
    Label,
    /// A chat message.
    Message,
    /// An Rx value or an Rx proposal's note.
    Rx,
    /// A file's name.
    File,
    /// The name of the case's doctor, clinic or lab.
    Person,
}

/// One search result.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The case.
    #[schema(value_type = String)]
    pub case_id: CaseId,
    /// Its label.
    pub case_label: String,
    /// What matched.
    pub kind: HitKind,
    /// Seq of the event that wrote the text (messages, Rx, files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The message (kind `message`): open the case at `?m={message_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The file (kind `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The Rx field path (kind `rx`, a value); absent for a proposal's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Whose name matched (kind `person`): `doctor`, `clinic` or `lab`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Plain text around the first match (at most 160 characters; `…` where cut). Show it as
    /// text, never as HTML.
    pub snippet: String,
    /// The matched words in `snippet`: `[start, end)` in UTF-16 code units (JavaScript string
    /// indices), in order, not overlapping.
    pub highlights: Vec<[u32; 2]>,
    /// When the text was written (ms); for people, the case's last activity.
    pub at: i64,
}

/// A page of results.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    /// Best matches first.
    pub results: Vec<SearchHit>,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<i64>,
}

/// The snippet of `body` around the first word that starts with one of `terms`, and where the
/// matching words are in it.
pub fn snippet(body: &str, terms: &[String]) -> (String, Vec<[u32; 2]>) {
    let hit = |w: &str| {
        let f = fold(w);
        terms.iter().any(|t| f.starts_with(t.as_str()))
    };
    let first = words(body).find(|(_, w)| hit(w)).map(|(at, _)| at).unwrap_or(0);
    // Start a few words before the first match, at a word's start.
    let chars_before = body[..first].chars().count();
    let mut start = if chars_before <= SNIPPET_BEFORE {
        0
    } else {
        let from = body[..first].char_indices().nth(chars_before - SNIPPET_BEFORE).map_or(0, |(i, _)| i);
        // Not in the middle of a word: from the next word's start.
        let mid_word = body[..from].chars().next_back().is_some_and(char::is_alphanumeric)
            && body[from..].chars().next().is_some_and(char::is_alphanumeric);
        let mut after = words(&body[from..first]).skip(usize::from(mid_word));
        after.next().map_or(first, |(at, _)| from + at)
    };
    if start > first {
        start = first;
    }
    let end = body[start..].char_indices().nth(SNIPPET_CHARS).map_or(body.len(), |(i, _)| start + i);
    let text = &body[start..end];
    let mut out = String::new();
    let mut highlights = Vec::new();
    if start > 0 {
        out.push('…');
    }
    let utf16 = |s: &str| s.encode_utf16().count() as u32;
    let base = utf16(&out);
    for (at, w) in words(text) {
        if hit(w) {
            let from = base + utf16(&text[..at]);
            highlights.push([from, from + utf16(w)]);
        }
    }
    // Line breaks become spaces (one UTF-16 unit each, so the ranges stay right).
    out.extend(text.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }));
    if end < body.len() {
        out.push('…');
    }
    (out, highlights)
}

/// The hits of the index, joined to the cases they belong to (people to the cases they are the
/// doctor, clinic or lab of), filtered by visibility, best first. `{HITS}` is the backend's
/// matching (columns kind, ref_id, case_id, field, seq, at, body, score: lower is better).
const SEARCH: &str = "WITH hits AS {MATERIALIZED} ({HITS}),
found AS (
    SELECT h.kind, h.ref_id, h.field, h.seq, h.at, h.body, h.score, h.case_id AS cid, NULL AS role FROM hits h
      WHERE h.case_id IS NOT NULL
    UNION ALL SELECT h.kind, h.ref_id, h.field, h.seq, h.at, h.body, h.score, c.id, 'doctor' FROM hits h
      JOIN cases c ON c.doctor_id = h.ref_id WHERE h.kind = 'person'
    UNION ALL SELECT h.kind, h.ref_id, h.field, h.seq, h.at, h.body, h.score, c.id, 'clinic' FROM hits h
      JOIN cases c ON c.clinic_id = h.ref_id WHERE h.kind = 'person'
    UNION ALL SELECT h.kind, h.ref_id, h.field, h.seq, h.at, h.body, h.score, c.id, 'lab' FROM hits h
      JOIN cases c ON c.lab_id = h.ref_id WHERE h.kind = 'person'
)
SELECT f.kind, f.ref_id, f.field, f.seq, f.body, f.role, c.id AS case_id, c.label AS case_label,
    CASE WHEN f.kind = 'person' THEN c.last_activity ELSE f.at END AS shown_at
FROM found f JOIN cases c ON c.id = f.cid
WHERE {VISIBLE} AND ($3 IS NULL OR c.id = $3)
ORDER BY f.score, shown_at DESC, c.id, f.kind, f.ref_id, f.field
LIMIT $4 OFFSET $5";

const SQLITE_HITS: &str =
    "SELECT d.kind, d.ref_id, d.case_id, d.field, d.seq, d.at, d.body, bm25(search_fts) AS score
    FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid WHERE search_fts MATCH $2";

const PG_HITS: &str = "SELECT d.kind, d.ref_id, d.case_id, d.field, d.seq, d.at, d.body, -ts_rank(d.tsv, q.q) AS score
    FROM search_docs d, (SELECT to_tsquery('simple', (SELECT string_agg('''' || btrim(search_fold(w)) || ''':*', ' & ')
        FROM unnest($2::text[]) AS w WHERE btrim(search_fold(w)) <> '')) AS q) AS q
    WHERE d.tsv @@ q.q";

type Row0 = (String, String, Option<String>, Option<i64>, String, Option<String>, String, String, i64);

fn row_of<R: Row>(r: &R) -> Result<Row0, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        r.try_get("kind")?,
        r.try_get("ref_id")?,
        r.try_get("field")?,
        r.try_get("seq")?,
        r.try_get("body")?,
        r.try_get("role")?,
        r.try_get("case_id")?,
        r.try_get("case_label")?,
        r.try_get("shown_at")?,
    ))
}

impl Db {
    /// The texts of the cases `user` may see now (only of `case`, when given) that contain every
    /// word of `terms` ([`query_words`], not empty) as a prefix of one of theirs: `limit` results
    /// from `offset`, best first.
    pub async fn search(
        &self,
        user: articula_protocol::UserId,
        terms: &[String],
        case: Option<CaseId>,
        limit: i64,
        offset: i64,
    ) -> Result<SearchPage, StoreError> {
        let vis = visible(self);
        let rows: Vec<Row0> = match self {
            Db::Sqlite(pool) => {
                // FTS5 query syntax: each word a quoted string (letters and digits only, so
                // nothing to escape), prefix-matched, all required.
                let matching: Vec<String> = terms.iter().map(|t| format!("\"{t}\"*")).collect();
                let sql = SEARCH
                    .replace("{MATERIALIZED}", "MATERIALIZED")
                    .replace("{HITS}", SQLITE_HITS)
                    .replace("{VISIBLE}", &vis);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.to_string())
                    .bind(matching.join(" "))
                    .bind(case.map(|c| c.to_string()))
                    .bind(limit + 1)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(row_of)
                    .collect::<Result<_, _>>()?
            }
            Db::Postgres(pool) => {
                let sql = SEARCH
                    .replace("{MATERIALIZED}", "MATERIALIZED")
                    .replace("{HITS}", PG_HITS)
                    .replace("{VISIBLE}", &vis);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.to_string())
                    .bind(terms.to_vec())
                    .bind(case.map(|c| c.to_string()))
                    .bind(limit + 1)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(row_of)
                    .collect::<Result<_, _>>()?
            }
        };
        let more = rows.len() as i64 > limit;
        let mut results = Vec::with_capacity(rows.len());
        for (kind, ref_id, field, seq, body, role, case_id, case_label, at) in
            rows.into_iter().take(limit as usize)
        {
            let kind = match kind.as_str() {
                "label" => HitKind::Label,
                "message" => HitKind::Message,
                "rx" => HitKind::Rx,
                "file" => HitKind::File,
                "person" => HitKind::Person,
                other => return Err(StoreError::Corrupt(format!("search kind: {other:?}"))),
            };
            let (snippet, highlights) = snippet(&body, terms);
            results.push(SearchHit {
                case_id: parse(&case_id, "case id")?,
                case_label,
                kind,
                seq: seq.map(|s| s as u64),
                message_id: (kind == HitKind::Message).then(|| ref_id.clone()),
                file_id: (kind == HitKind::File).then_some(ref_id),
                field,
                role,
                snippet,
                highlights,
                at,
            });
        }
        Ok(SearchPage { results, next_offset: more.then_some(offset + limit) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_split_on_anything_but_letters_and_digits() {
        assert_eq!(
            query_words("  Muñoz-PÉREZ, crown_prep.stl  muñoz "),
            ["munoz", "perez", "crown", "prep", "stl"]
        );
        assert!(query_words("¡¿ -- !").is_empty());
    }

    #[test]
    fn a_snippet_marks_every_word_starting_with_a_term_in_utf16_units() {
        let (s, h) = snippet("Ñu 😀 check the MARGIN; margins too", &["marg".into()]);
        assert_eq!(s, "Ñu 😀 check the MARGIN; margins too");
        let u: Vec<u16> = s.encode_utf16().collect();
        let marked: Vec<String> =
            h.iter().map(|[a, b]| String::from_utf16(&u[*a as usize..*b as usize]).unwrap()).collect();
        assert_eq!(marked, ["MARGIN", "margins"]);
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match() {
        let body = format!("{} the margin is open {}", "word ".repeat(40), "more ".repeat(60));
        let (s, h) = snippet(&body, &["margin".into()]);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.chars().count() <= SNIPPET_CHARS + 2);
        let u: Vec<u16> = s.encode_utf16().collect();
        assert_eq!(String::from_utf16(&u[h[0][0] as usize..h[0][1] as usize]).unwrap(), "margin");
        assert!(s.find("margin").unwrap() < 60, "{s}");
        // It starts at a word's start.
        let (s, _) = snippet(&format!("{}margin", "abcdefghij ".repeat(10)), &["margin".into()]);
        assert!(s.starts_with("…abcdefghij "), "{s}");
    }
}
