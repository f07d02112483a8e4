//! Exports of an organisation's audit chain (JSON Lines or CSV), written page by page — the same
//! writer for `GET /api/v1/audit/export` and `articula audit export` — and the offline check of
//! an exported file (`articula audit verify FILE`).
//!
//! A file holds, in order: the entries (every field, the hashes included, so the chain can be
//! recomputed without the server), the chain's recorded heads up to the last exported entry,
//! and an end line `{"end":true,"org_id":…,"entries":N,"last_hash":…,"filtered":…}`. A file
//! without its end line was cut; one whose end line says `"filtered":true` holds only some of
//! the chain's entries (a user, a case, a period…) and cannot be checked as a chain.
//!
//! CSV: a header row, then one row per line of the JSON Lines form, told apart by the `kind`
//! column (`entry`, `head`, `end`). An absent value is an empty unquoted field; every text is
//! quoted (so an empty text is `""`, not absent: the hash tells them apart). A head row fills
//! `org_id`, `n`, `at` and `hash`; the end row carries its whole end object, as JSON, in
//! `details` (and `n` = the entry count, `hash` = the last hash).

use std::io::BufRead;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::chain::{Broken, Checker, Entry, GENESIS, Head};
use super::{Record, record};
use crate::store::audit::AuditFilter;
use crate::store::{Db, StoreError};

/// Entries read from the database per page of an export.
pub const PAGE: i64 = 1000;

/// The columns of the CSV form.
pub const CSV_HEADER: &str =
    "kind,org_id,n,at,actor_id,ip,action,target,case_id,details,source,prev_hash,hash";

/// The format of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON Lines.
    #[default]
    Jsonl,
    /// CSV with a header row.
    Csv,
}

impl Format {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The last line of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Always `true`: marks the line.
    pub end: bool,
    /// The organisation whose chain it is.
    pub org_id: String,
    /// Entries in the file.
    pub entries: u64,
    /// The hash of the last entry in the file ([`GENESIS`] when there is none).
    pub last_hash: String,
    /// Only some entries (filters were given): not a chain that can be checked.
    pub filtered: bool,
    /// When the export was made (ms).
    pub exported_at: i64,
}

/// A line of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// An entry.
    Entry(Box<Entry>),
    /// A recorded head.
    Head(Head),
    /// The end.
    End(End),
}

#[derive(Serialize, Deserialize)]
struct HeadLine {
    head: Head,
}

/// What to export.
#[derive(Clone, Debug)]
pub struct Export {
    /// The organisation.
    pub org: String,
    /// Filters (`after_n` and `limit` are ignored).
    pub filter: AuditFilter,
    /// The format.
    pub format: Format,
    /// Recorded (with its entry count and last hash in `details`) once the end line is written.
    pub finished: Option<Record>,
}

impl Export {
    /// Whether the filters leave out entries of the chain.
    pub fn filtered(&self) -> bool {
        let f = &self.filter;
        f.actor_id.is_some()
            || f.action.is_some()
            || f.case_id.is_some()
            || f.from.is_some()
            || f.until.is_some()
    }
}

/// Writes one line in a format.
pub fn write_line(format: Format, line: &Line, out: &mut Vec<u8>) {
    match format {
        Format::Jsonl => {
            let res = match line {
                Line::Entry(e) => serde_json::to_writer(&mut *out, e),
                Line::Head(h) => serde_json::to_writer(&mut *out, &HeadLine { head: h.clone() }),
                Line::End(end) => serde_json::to_writer(&mut *out, end),
            };
            // Serialising these plain structs into memory cannot fail.
            debug_assert!(res.is_ok());
        }
        Format::Csv => {
            let n = |v: u64| Some(Field::Bare(v.to_string()));
            let t = |v: &str| Some(Field::Text(v.to_owned()));
            let o = |v: &Option<String>| v.as_deref().map(|s| Field::Text(s.to_owned()));
            let fields: Vec<Option<Field>> = match line {
                Line::Entry(e) => vec![
                    Some(Field::Bare("entry".into())),
                    t(&e.org_id),
                    n(e.n),
                    Some(Field::Bare(e.at.to_string())),
                    o(&e.actor_id),
                    o(&e.ip),
                    t(&e.action),
                    o(&e.target),
                    o(&e.case_id),
                    t(&e.details),
                    t(&e.source),
                    t(&e.prev_hash),
                    t(&e.hash),
                ],
                Line::Head(h) => {
                    let mut f = vec![None; 13];
                    f[0] = Some(Field::Bare("head".into()));
                    f[1] = t(&h.org_id);
                    f[2] = n(h.n);
                    f[3] = Some(Field::Bare(h.at.to_string()));
                    f[12] = t(&h.hash);
                    f
                }
                Line::End(end) => {
                    let mut f = vec![None; 13];
                    f[0] = Some(Field::Bare("end".into()));
                    f[1] = t(&end.org_id);
                    f[2] = n(end.entries);
                    f[3] = Some(Field::Bare(end.exported_at.to_string()));
                    f[9] = t(&serde_json::to_string(end).unwrap_or_default());
                    f[12] = t(&end.last_hash);
                    f
                }
            };
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match f {
                    None => {}
                    Some(Field::Bare(s)) => out.extend_from_slice(s.as_bytes()),
                    Some(Field::Text(s)) => {
                        out.push(b'"');
                        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
                        out.push(b'"');
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

#[derive(Clone)]
enum Field {
    Bare(String),
    Text(String),
}

struct State {
    db: Db,
    export: Export,
    /// The chain's end when the export started: entries appended since are left for the next.
    upto: u64,
    heads: Vec<Head>,
    after: u64,
    entries: u64,
    last_hash: String,
    started: bool,
    done: bool,
}

/// The export as a stream of chunks (a page of entries each): never more than a page in memory.
/// A database error ends the stream with it, before the end line, so the file is seen as cut.
pub fn stream(db: Db, export: Export) -> impl Stream<Item = Result<Bytes, StoreError>> + 'static {
    let state = State {
        db,
        export,
        upto: 0,
        heads: Vec::new(),
        after: 0,
        entries: 0,
        last_hash: GENESIS.to_owned(),
        started: false,
        done: false,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        let format = st.export.format;
        let mut out = Vec::new();
        if !st.started {
            st.started = true;
            st.upto = st.db.audit_chain_end(&st.export.org).await?.map_or(0, |(n, _)| n);
            st.heads = st
                .db
                .audit_heads(Some(&st.export.org))
                .await?
                .into_iter()
                .filter(|h| h.n <= st.upto)
                .collect();
            if format == Format::Csv {
                out.extend_from_slice(CSV_HEADER.as_bytes());
                out.push(b'\n');
            }
        }
        let f = AuditFilter { after_n: st.after, limit: PAGE, ..st.export.filter.clone() };
        let page =
            if st.after < st.upto { st.db.audit_entries(&st.export.org, &f).await? } else { Vec::new() };
        let full = page.len() as i64 == PAGE;
        let mut reached_end = !full;
        for e in page {
            if e.n > st.upto {
                reached_end = true;
                break;
            }
            st.after = e.n;
            st.entries += 1;
            st.last_hash.clone_from(&e.hash);
            write_line(format, &Line::Entry(Box::new(e)), &mut out);
        }
        if reached_end || st.after >= st.upto {
            for h in std::mem::take(&mut st.heads) {
                write_line(format, &Line::Head(h), &mut out);
            }
            let end = End {
                end: true,
                org_id: st.export.org.clone(),
                entries: st.entries,
                last_hash: st.last_hash.clone(),
                filtered: st.export.filtered(),
                exported_at: articula_actors::clock::now_ms(),
            };
            write_line(format, &Line::End(end), &mut out);
            st.done = true;
            // Written, not necessarily received: the client may still drop the connection.
            if let Some(r) = st.export.finished.take() {
                let details = serde_json::json!({"entries": st.entries, "last_hash": st.last_hash});
                let _ = record(&st.db, r.details(details)).await;
            }
        }
        Ok(Some((Bytes::from(out), st)))
    })
}

/// Why a file could not be checked at all (exit code 2), as opposed to a broken chain.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading it failed.
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    /// It is not an export.
    #[error("{0}")]
    NotAnExport(String),
    /// It is a filtered export: only some entries, not a chain.
    #[error(
        "this export is filtered (only some entries of the chain: a user, an action, a case or a period): \
         it cannot be verified as a chain; export the whole chain (no filters) to verify it"
    )]
    Filtered,
}

/// What the check of a file found.
#[derive(Debug)]
pub struct FileVerified {
    /// The organisation.
    pub org_id: String,
    /// Entries checked.
    pub entries: u64,
    /// The last entry's hash.
    pub last_hash: String,
}

/// Parses one line (a JSON Lines line or a CSV record); `None` for the CSV header.
fn parse_line(format: Format, text: &str) -> Result<Option<Line>, String> {
    match format {
        Format::Jsonl => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            if v.get("end").is_some() {
                serde_json::from_value(v)
                    .map(|e| Some(Line::End(e)))
                    .map_err(|e| format!("a bad end line: {e}"))
            } else if v.get("head").is_some() {
                serde_json::from_value::<HeadLine>(v)
                    .map(|h| Some(Line::Head(h.head)))
                    .map_err(|e| format!("a bad head line: {e}"))
            } else {
                serde_json::from_value(v)
                    .map(|e| Some(Line::Entry(Box::new(e))))
                    .map_err(|e| format!("not an entry: {e}"))
            }
        }
        Format::Csv => {
            let f = parse_csv_record(text)?;
            if f.len() != 13 {
                return Err(format!("{} columns instead of 13", f.len()));
            }
            let text = |i: usize| f[i].clone().ok_or_else(|| format!("column {i} is empty"));
            let num = |i: usize| -> Result<i64, String> {
                text(i)?.parse::<i64>().map_err(|_| format!("column {i} is not a number"))
            };
            match f[0].as_deref() {
                Some("kind") => Ok(None),
                Some("entry") => Ok(Some(Line::Entry(Box::new(Entry {
                    org_id: text(1)?,
                    n: num(2)? as u64,
                    at: num(3)?,
                    actor_id: f[4].clone(),
                    ip: f[5].clone(),
                    action: text(6)?,
                    target: f[7].clone(),
                    case_id: f[8].clone(),
                    details: text(9)?,
                    source: text(10)?,
                    prev_hash: text(11)?,
                    hash: text(12)?,
                })))),
                Some("head") => Ok(Some(Line::Head(Head {
                    org_id: text(1)?,
                    n: num(2)? as u64,
                    at: num(3)?,
                    hash: text(12)?,
                }))),
                Some("end") => serde_json::from_str(&text(9)?)
                    .map(|e| Some(Line::End(e)))
                    .map_err(|e| format!("a bad end row: {e}")),
                _ => Err("an unknown kind of row".into()),
            }
        }
    }
}

/// Splits a CSV record: `None` for an empty unquoted field, the text of a quoted one.
fn parse_csv_record(s: &str) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        v.push('"');
                    }
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => return Err("an unterminated quoted field".into()),
                }
            }
            out.push(Some(v));
            match chars.next() {
                Some(',') => continue,
                None => return Ok(out),
                Some(_) => return Err("text after a quoted field".into()),
            }
        }
        let mut v = String::new();
        loop {
            match chars.next() {
                Some(',') => {
                    out.push((!v.is_empty()).then_some(v));
                    break;
                }
                Some('"') => return Err("a quote inside an unquoted field".into()),
                Some(c) => v.push(c),
                None => {
                    out.push((!v.is_empty()).then_some(v));
                    return Ok(out);
                }
            }
        }
    }
}

/// Reads the records of a file one by one (a CSV record may span lines inside quotes).
struct Records<R> {
    input: R,
    format: Format,
    line: u64,
}

impl<R: BufRead> Records<R> {
    /// The next record and the line it starts on.
    fn next(&mut self) -> std::io::Result<Option<(u64, String)>> {
        let mut rec = String::new();
        let start = self.line + 1;
        loop {
            let mut buf = String::new();
            if self.input.read_line(&mut buf)? == 0 {
                return Ok((!rec.is_empty()).then_some((start, rec)));
            }
            self.line += 1;
            rec.push_str(&buf);
            let open_quote = self.format == Format::Csv && rec.matches('"').count() % 2 == 1;
            if !open_quote {
                let trimmed = rec.trim_end_matches(['\n', '\r']).to_owned();
                if trimmed.is_empty() {
                    rec.clear();
                    continue;
                }
                return Ok(Some((start, trimmed)));
            }
        }
    }
}

/// Checks an exported file without the server: the chain entry by entry, the recorded heads,
/// and the end line (count and last hash), so an edited byte, a removed line or a cut tail is
/// named. Two passes (the heads and the end line come last); memory stays flat.
pub fn verify_file(path: &std::path::Path) -> Result<Result<FileVerified, Broken>, FileError> {
    let shown = path.display().to_string();
    let io = |e| FileError::Io(shown.clone(), e);
    let open = || -> Result<Records<std::io::BufReader<std::fs::File>>, FileError> {
        let mut input = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let starts_csv = input.fill_buf().map_err(io)?.starts_with(b"kind,");
        let format = if starts_csv { Format::Csv } else { Format::Jsonl };
        Ok(Records { input, format, line: 0 })
    };

    // Pass 1: the heads, the end line, and where the entries stop.
    let mut records = open()?;
    let format = records.format;
    let mut heads = Vec::new();
    let mut end: Option<End> = None;
    let mut last: Option<(String, u64)> = None;
    let mut seen_any = false;
    while let Some((line_no, text)) = records.next().map_err(io)? {
        let org = last.as_ref().map_or("?", |(o, _)| o.as_str()).to_owned();
        let next_n = last.as_ref().map_or(1, |(_, n)| n + 1);
        let broken = |reason: String| Broken { org_id: org.clone(), n: next_n, reason };
        if end.is_some() {
            return Ok(Err(broken(format!("line {line_no} comes after the end line (added)"))));
        }
        match parse_line(format, &text) {
            Ok(None) if line_no == 1 => {}
            Ok(None) => return Ok(Err(broken(format!("line {line_no} is a second header row")))),
            Ok(Some(Line::Entry(e))) => {
                seen_any = true;
                last = Some((e.org_id.clone(), e.n));
            }
            Ok(Some(Line::Head(h))) => heads.push(h),
            Ok(Some(Line::End(e))) => end = Some(e),
            Err(why) if !seen_any && line_no == 1 => {
                return Err(FileError::NotAnExport(format!(
                    "{shown} is not an Articula audit export (line 1: {why})"
                )));
            }
            Err(why) => return Ok(Err(broken(format!("line {line_no} is damaged or edited: {why}")))),
        }
    }
    let Some(end) = end else {
        let (org, n) = last.unwrap_or_else(|| ("?".into(), 0));
        return Ok(Err(Broken {
            org_id: org,
            n: n + 1,
            reason: format!("the file ends after entry {n} without its end line: it was cut"),
        }));
    };
    if end.filtered {
        return Err(FileError::Filtered);
    }

    // Pass 2: the chain, against the heads.
    let mut records = open()?;
    let mut checker = Checker::new(&heads);
    while let Some((line_no, text)) = records.next().map_err(io)? {
        if let Ok(Some(Line::Entry(e))) = parse_line(format, &text) {
            if e.org_id != end.org_id {
                return Ok(Err(Broken {
                    org_id: end.org_id.clone(),
                    n: e.n,
                    reason: format!("line {line_no} is an entry of another organisation ({})", e.org_id),
                }));
            }
            if let Err(b) = checker.push(*e) {
                return Ok(Err(b));
            }
        }
    }
    let (n, last_hash) =
        checker.last(&end.org_id).map_or((0, GENESIS.to_owned()), |(n, h)| (n, h.to_owned()));
    let verified = match checker.finish() {
        Ok(v) => v,
        Err(b) => return Ok(Err(b)),
    };
    if verified.entries != end.entries || last_hash != end.last_hash {
        return Ok(Err(Broken {
            org_id: end.org_id.clone(),
            n: n.min(end.entries) + 1,
            reason: format!(
                "the end line says {} entries ending in {}, the file holds {} ending in {last_hash}: \
                 entries were removed or added",
                end.entries, end.last_hash, verified.entries
            ),
        }));
    }
    Ok(Ok(FileVerified { org_id: end.org_id, entries: verified.entries, last_hash }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_keeps_absent_and_empty_apart() {
        let e = Entry {
            org_id: "o".into(),
            n: 1,
            at: 5,
            actor_id: None,
            ip: Some(String::new()),
            action: "a.b".into(),
            target: Some("x,\"y\"\nz".into()),
            case_id: None,
            details: r#"{"k":"v"}"#.into(),
            source: "inbox:1".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
        .seal(GENESIS);
        let mut out = Vec::new();
        write_line(Format::Csv, &Line::Entry(Box::new(e.clone())), &mut out);
        let text = String::from_utf8(out).unwrap();
        let mut r = Records { input: std::io::Cursor::new(text.clone()), format: Format::Csv, line: 0 };
        let (_, rec) = r.next().unwrap().unwrap();
        assert_eq!(parse_line(Format::Csv, &rec), Ok(Some(Line::Entry(Box::new(e)))), "{text}");
    }
}
