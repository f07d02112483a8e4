//! The audit chain: the canonical form of an entry, its hash, and the check of a chain — the
//! same code for the server, `articula audit verify` on the database, and on an exported file.
//!
//! `hash = hex(SHA-256(prev_hash ‖ canonical entry))`, where `prev_hash` is the previous entry's
//! hash in the same organisation's chain (64 zeros for the first), `‖` is concatenation of the
//! two UTF-8 strings, and the canonical entry is the JSON object of the entry's fields except
//! the two hashes, keys in alphabetical order, no whitespace, absent values as `null`:
//!
//! ```text
//! {"action":…,"actor_id":…,"at":…,"case_id":…,"details":…,"ip":…,"n":…,"org_id":…,"source":…,"target":…}
//! ```
//!
//! `details` is itself a JSON string (canonical: keys sorted by `serde_json`'s map). Entries are
//! numbered `n = 1, 2, 3…` per organisation without gaps; the chain's head `(n, hash)` is
//! recorded every 1,000 entries or every minute (`audit_heads`), so an entry deleted, changed or
//! inserted anywhere, or a tail cut off before the last recorded head, breaks the check at a
//! named entry.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of an organisation's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored and exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// The organisation whose chain it is in (`system` for what belongs to none).
    pub org_id: String,
    /// Its position in that chain, from 1.
    pub n: u64,
    /// When it happened, milliseconds since the Unix epoch (UTC).
    pub at: i64,
    /// Who did it.
    pub actor_id: Option<String>,
    /// From which address.
    pub ip: Option<String>,
    /// What (`auth.login`, `case.message_posted`, `file.download`…).
    pub action: String,
    /// On what (`case:<id>`, `file:<id>`, `user:<id>`, `session:<id>`…).
    pub target: Option<String>,
    /// The case it concerns.
    pub case_id: Option<String>,
    /// More about it, as a JSON object in a string (never message or Rx text).
    pub details: String,
    /// Where it came from (`event:<case>:<seq>`, `inbox:<id>`): one entry per source.
    pub source: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The hashed fields, in canonical (alphabetical) order.
#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor_id: Option<&'a str>,
    at: i64,
    case_id: Option<&'a str>,
    details: &'a str,
    ip: Option<&'a str>,
    n: u64,
    org_id: &'a str,
    source: &'a str,
    target: Option<&'a str>,
}

impl Entry {
    /// The canonical form that is hashed.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&Canonical {
            action: &self.action,
            actor_id: self.actor_id.as_deref(),
            at: self.at,
            case_id: self.case_id.as_deref(),
            details: &self.details,
            ip: self.ip.as_deref(),
            n: self.n,
            org_id: &self.org_id,
            source: &self.source,
            target: self.target.as_deref(),
        })
        .unwrap_or_default()
    }

    /// The hash this entry must have after `prev_hash`.
    pub fn expected_hash(&self, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(self.canonical().as_bytes());
        hex::encode(h.finalize())
    }

    /// Seals a new entry after `prev_hash`.
    pub fn seal(mut self, prev_hash: &str) -> Self {
        self.prev_hash = prev_hash.to_owned();
        self.hash = self.expected_hash(prev_hash);
        self
    }
}

/// A recorded chain head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The organisation.
    pub org_id: String,
    /// The entry it was at.
    pub n: u64,
    /// That entry's hash.
    pub hash: String,
    /// When it was recorded (ms).
    pub at: i64,
}

/// Where a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("organisation {org_id}: entry {n}: {reason}")]
pub struct Broken {
    /// The organisation.
    pub org_id: String,
    /// The first entry that does not check out.
    pub n: u64,
    /// Why.
    pub reason: String,
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Organisations.
    pub orgs: u64,
    /// Recorded heads matched.
    pub heads: u64,
}

/// Checks chains entry by entry (entries of several organisations may be interleaved; each
/// is checked against its own chain), then the recorded heads. Memory: the last entry of each
/// organisation, and the hashes of the entries the heads name.
pub struct Checker {
    last: std::collections::HashMap<String, (u64, String)>,
    out: Verified,
    heads: Vec<Head>,
    /// The positions the heads name, and the hashes seen there.
    seen: std::collections::HashMap<(String, u64), Option<String>>,
}

impl Checker {
    /// A checker that will hold the chains to these recorded heads.
    pub fn new(heads: &[Head]) -> Self {
        Self {
            last: Default::default(),
            out: Verified::default(),
            heads: heads.to_vec(),
            seen: heads.iter().map(|h| ((h.org_id.clone(), h.n), None)).collect(),
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: Entry) -> Result<(), Broken> {
        let broken = |org: &str, n: u64, reason: String| Broken { org_id: org.to_owned(), n, reason };
        let (prev_n, prev_hash) = self.last.get(&e.org_id).cloned().unwrap_or((0, GENESIS.to_owned()));
        if e.n != prev_n + 1 {
            let reason = if e.n > prev_n + 1 {
                format!("missing: entries {}–{} are not there", prev_n + 1, e.n - 1)
            } else {
                format!("out of order or repeated (after entry {prev_n})")
            };
            return Err(broken(&e.org_id, prev_n + 1, reason));
        }
        if e.prev_hash != prev_hash {
            return Err(broken(&e.org_id, e.n, "its prev_hash is not the previous entry's hash".into()));
        }
        if e.expected_hash(&prev_hash) != e.hash {
            return Err(broken(&e.org_id, e.n, "its content does not match its hash (changed)".into()));
        }
        if serde_json::from_str::<serde_json::Value>(&e.details).is_err() {
            return Err(broken(&e.org_id, e.n, "its details are not JSON".into()));
        }
        self.out.entries += 1;
        if let Some(slot) = self.seen.get_mut(&(e.org_id.clone(), e.n)) {
            *slot = Some(e.hash.clone());
        }
        self.last.insert(e.org_id, (e.n, e.hash));
        Ok(())
    }

    /// The last entry checked of an organisation's chain: its position and hash.
    pub fn last(&self, org: &str) -> Option<(u64, &str)> {
        self.last.get(org).map(|(n, h)| (*n, h.as_str()))
    }

    /// Checks the recorded heads against what was seen.
    pub fn finish(mut self) -> Result<Verified, Broken> {
        let broken = |org: &str, n: u64, reason: String| Broken { org_id: org.to_owned(), n, reason };
        self.out.orgs = self.last.len() as u64;
        for h in &self.heads {
            let end = self.last.get(&h.org_id).map_or(0, |(n, _)| *n);
            match self.seen.get(&(h.org_id.clone(), h.n)).and_then(Option::as_ref) {
                Some(hash) if *hash == h.hash => self.out.heads += 1,
                Some(_) => {
                    return Err(broken(
                        &h.org_id,
                        h.n,
                        "it differs from the head recorded for it (rewritten)".into(),
                    ));
                }
                None if h.n > end => {
                    return Err(broken(
                        &h.org_id,
                        end + 1,
                        format!(
                            "the chain ends at entry {end} but its head was recorded at entry {}: the tail was cut",
                            h.n
                        ),
                    ));
                }
                // An export of part of a chain (a date range) need not hold every head's entry.
                None => {}
            }
        }
        Ok(self.out)
    }
}

/// Checks a whole set of entries, then the recorded heads.
pub fn verify(entries: impl IntoIterator<Item = Entry>, heads: &[Head]) -> Result<Verified, Broken> {
    let mut c = Checker::new(heads);
    for e in entries {
        c.push(e)?;
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(org: &str, k: u64) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (1..=k)
            .map(|n| {
                let e = Entry {
                    org_id: org.into(),
                    n,
                    at: n as i64,
                    actor_id: Some("u".into()),
                    ip: None,
                    action: "case.message_posted".into(),
                    target: Some("case:c".into()),
                    case_id: Some("c".into()),
                    details: "{}".into(),
                    source: format!("event:c:{n}"),
                    prev_hash: String::new(),
                    hash: String::new(),
                }
                .seal(&prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(e: &Entry) -> Head {
        Head { org_id: e.org_id.clone(), n: e.n, hash: e.hash.clone(), at: 0 }
    }

    #[test]
    fn an_intact_chain_checks_out() {
        let c = chain("a", 5);
        let v = verify(c.clone(), &[head(&c[4])]);
        assert_eq!(v, Ok(Verified { entries: 5, orgs: 1, heads: 1 }));
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut c = chain("a", 5);
        c[2].actor_id = Some("someone else".into());
        assert_eq!(verify(c, &[]).map_err(|b| (b.n, b.reason.contains("changed"))), Err((3, true)));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut c = chain("a", 5);
        c.remove(1);
        assert_eq!(verify(c, &[]).map_err(|b| b.n), Err(2));
    }

    #[test]
    fn a_cut_tail_is_found_by_the_recorded_head() {
        let c = chain("a", 5);
        let h = head(&c[4]);
        assert_eq!(verify(c[..3].to_vec(), &[h]).map_err(|b| b.n), Err(4));
    }

    #[test]
    fn a_rewritten_and_resealed_chain_differs_from_its_head() {
        let c = chain("a", 3);
        let h = head(&c[2]);
        let mut forged = c.clone();
        forged[1].ip = Some("10.0.0.1".into());
        let resealed = forged[1].clone().seal(&forged[0].hash);
        forged[1] = resealed;
        let third = forged[2].clone().seal(&forged[1].hash);
        forged[2] = third;
        assert_eq!(verify(forged, &[h]).map_err(|b| b.n), Err(3));
    }
}
