//! The audit log's storage: the inbox of records, the batch that chains the feeds, and reads.

use std::collections::HashMap;

use articula_protocol::{CaseId, EventData};
use sqlx::Row;

use super::{BeginWrite, Db, StoreError, parse};
use crate::audit::chain::{Entry, GENESIS, Head};
use crate::audit::{Record, SYSTEM_ORG, event_summary};
use crate::with_db;

/// The feed subscriber name of the audit actor.
const SUBSCRIBER: &str = "audit";
/// A chain's head is recorded at least every this many entries…
const HEAD_EVERY_ENTRIES: u64 = 1000;
/// …and at least this often while the chain grows (ms).
const HEAD_EVERY_MS: i64 = 60_000;

/// What the audit actor knows of a chain between batches.
#[derive(Clone, Debug)]
pub struct ChainState {
    /// The last entry's position and hash.
    pub n: u64,
    /// Its hash.
    pub hash: String,
    /// When and where the head was last recorded (`None`: not since this process started).
    pub recorded: Option<(u64, i64)>,
}

/// An item to chain: everything of an entry but its position and hashes.
struct Pending {
    org_id: String,
    at: i64,
    actor_id: Option<String>,
    ip: Option<String>,
    action: String,
    target: Option<String>,
    case_id: Option<String>,
    details: String,
    source: String,
}

fn entry_from_row<R: Row>(r: &R) -> Result<Entry, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Entry {
        org_id: r.try_get("org_id")?,
        n: r.try_get::<i64, _>("n")? as u64,
        at: r.try_get("at")?,
        actor_id: r.try_get("actor_id")?,
        ip: r.try_get("ip")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        case_id: r.try_get("case_id")?,
        details: r.try_get("details")?,
        source: r.try_get("source")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Filters of an audit read.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor_id: Option<String>,
    /// Only actions starting with this (`auth.`, `case.message_posted`…).
    pub action: Option<String>,
    /// Only this case.
    pub case_id: Option<String>,
    /// From (ms, inclusive).
    pub from: Option<i64>,
    /// Until (ms, exclusive).
    pub until: Option<i64>,
    /// Entries after this position.
    pub after_n: u64,
    /// At most this many.
    pub limit: i64,
}

impl Db {
    /// Writes a record to the durable inbox, one row per organisation.
    pub async fn audit_record(&self, r: &Record) -> Result<(), StoreError> {
        let orgs: Vec<String> = if r.orgs.is_empty() {
            vec![SYSTEM_ORG.to_owned()]
        } else {
            r.orgs.iter().map(ToString::to_string).collect()
        };
        let details = serde_json::to_string(&r.details).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let at = articula_actors::clock::now_ms();
        with_db!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO audit_inbox (org_id, at, actor_id, ip, action, target, case_id, details) ",
            );
            qb.push_values(&orgs, |mut b, org| {
                b.push_bind(org.as_str())
                    .push_bind(at)
                    .push_bind(r.actor_id.map(|u| u.to_string()))
                    .push_bind(r.ip.as_deref())
                    .push_bind(r.action)
                    .push_bind(r.target.as_deref())
                    .push_bind(r.case_id.map(|c| c.to_string()))
                    .push_bind(details.as_str());
            });
            qb.build().execute(pool).await?;
        });
        Ok(())
    }

    /// Chains up to `limit` feed rows and `limit` inbox rows in one transaction: entries, chain
    /// heads and the checkpoint together. `heads` caches each organisation's last `(n, hash)`;
    /// on error it is cleared (the transaction rolled back). Answers the entries appended.
    pub async fn chain_audit(
        &self,
        heads: &mut HashMap<String, ChainState>,
        limit: i64,
    ) -> Result<usize, StoreError> {
        let res = self.chain_audit_tx(heads, limit).await;
        if res.is_err() {
            heads.clear();
        }
        res
    }

    async fn chain_audit_tx(
        &self,
        heads: &mut HashMap<String, ChainState>,
        limit: i64,
    ) -> Result<usize, StoreError> {
        let mut touched: HashMap<String, ChainState> = HashMap::new();
        let appended = with_db!(self, pool => {
            // Read and seal outside the write transaction (SQLite has one writer: the group
            // commit must not wait while entries are hashed); write in one short transaction
            // that first checks nobody moved the checkpoint meanwhile.
            let mut rd = pool.acquire().await?;
            let checkpoint: i64 = sqlx::query("SELECT pos FROM feed_checkpoints WHERE subscriber = $1")
                .bind(SUBSCRIBER).fetch_optional(&mut *rd).await?
                .map(|r| r.try_get::<i64, _>("pos")).transpose()?.unwrap_or(0);
            let feed = sqlx::query(
                "SELECT f.pos, f.case_id, f.seq, f.clinic_id, f.lab_id, e.at, e.actor_id, e.ip, e.data
                 FROM event_feed f JOIN events e ON e.case_id = f.case_id AND e.seq = f.seq
                 WHERE f.pos > $1 ORDER BY f.pos LIMIT $2",
            )
            .bind(checkpoint).bind(limit).fetch_all(&mut *rd).await?;
            let inbox = sqlx::query(
                "SELECT id, org_id, at, actor_id, ip, action, target, case_id, details FROM audit_inbox ORDER BY id LIMIT $1",
            )
            .bind(limit).fetch_all(&mut *rd).await?;
            if feed.is_empty() && inbox.is_empty() {
                return Ok(0);
            }
            let mut items = Vec::with_capacity(feed.len() + inbox.len());
            let mut last_pos = checkpoint;
            for r in &feed {
                last_pos = r.try_get("pos")?;
                let case: String = r.try_get("case_id")?;
                let seq: i64 = r.try_get("seq")?;
                let data: String = r.try_get("data")?;
                let data: EventData = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?;
                let (target, details) = event_summary(parse::<CaseId>(&case, "case id")?, &data);
                let details = serde_json::to_string(&details).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let clinic: String = r.try_get("clinic_id")?;
                let lab: Option<String> = r.try_get("lab_id")?;
                for org in std::iter::once(clinic).chain(lab) {
                    items.push(Pending {
                        org_id: org,
                        at: r.try_get("at")?,
                        actor_id: Some(r.try_get("actor_id")?),
                        ip: r.try_get("ip")?,
                        action: format!("case.{}", data.kind()),
                        target: Some(target.clone()),
                        case_id: Some(case.clone()),
                        details: details.clone(),
                        source: format!("event:{case}:{seq}"),
                    });
                }
            }
            let mut inbox_ids = Vec::with_capacity(inbox.len());
            for r in &inbox {
                let id: i64 = r.try_get("id")?;
                inbox_ids.push(id);
                items.push(Pending {
                    org_id: r.try_get("org_id")?,
                    at: r.try_get("at")?,
                    actor_id: r.try_get("actor_id")?,
                    ip: r.try_get("ip")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    case_id: r.try_get("case_id")?,
                    details: r.try_get("details")?,
                    source: format!("inbox:{id}"),
                });
            }
            // Seal each entry after its organisation's head.
            let mut entries = Vec::with_capacity(items.len());
            for p in items {
                let head = match touched.get(&p.org_id).or_else(|| heads.get(&p.org_id)) {
                    Some(h) => h.clone(),
                    None => sqlx::query("SELECT n, hash FROM audit_entries WHERE org_id = $1 ORDER BY n DESC LIMIT 1")
                        .bind(&p.org_id).fetch_optional(&mut *rd).await?
                        .map(|r| Ok::<_, StoreError>(ChainState { n: r.try_get::<i64, _>("n")? as u64, hash: r.try_get::<String, _>("hash")?, recorded: None }))
                        .transpose()?
                        .unwrap_or(ChainState { n: 0, hash: GENESIS.to_owned(), recorded: None }),
                };
                let e = Entry {
                    org_id: p.org_id,
                    n: head.n + 1,
                    at: p.at,
                    actor_id: p.actor_id,
                    ip: p.ip,
                    action: p.action,
                    target: p.target,
                    case_id: p.case_id,
                    details: p.details,
                    source: p.source,
                    prev_hash: String::new(),
                    hash: String::new(),
                }
                .seal(&head.hash);
                touched.insert(e.org_id.clone(), ChainState { n: e.n, hash: e.hash.clone(), recorded: head.recorded });
                entries.push(e);
            }
            drop(rd);
            let mut tx = pool.begin_write().await?;
            let now_checkpoint: i64 = sqlx::query("SELECT pos FROM feed_checkpoints WHERE subscriber = $1")
                .bind(SUBSCRIBER).fetch_optional(&mut *tx).await?
                .map(|r| r.try_get::<i64, _>("pos")).transpose()?.unwrap_or(0);
            if now_checkpoint != checkpoint {
                // Another writer chained meanwhile (two servers on one database): start over.
                return Err(StoreError::Corrupt("the audit checkpoint moved during a batch".into()));
            }
            for chunk in entries.chunks(300) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_entries (org_id, n, at, actor_id, ip, action, target, case_id, details, source, prev_hash, hash) ",
                );
                qb.push_values(chunk, |mut b, e| {
                    b.push_bind(e.org_id.as_str())
                        .push_bind(e.n as i64)
                        .push_bind(e.at)
                        .push_bind(e.actor_id.as_deref())
                        .push_bind(e.ip.as_deref())
                        .push_bind(e.action.as_str())
                        .push_bind(e.target.as_deref())
                        .push_bind(e.case_id.as_deref())
                        .push_bind(e.details.as_str())
                        .push_bind(e.source.as_str())
                        .push_bind(e.prev_hash.as_str())
                        .push_bind(e.hash.as_str());
                });
                qb.build().execute(&mut *tx).await?;
            }
            // Heads, now and then: at a chain's first batch in this process, then every
            // thousand entries or every minute.
            let now = articula_actors::clock::now_ms();
            for (org, c) in touched.iter_mut() {
                let due = c.recorded.is_none_or(|(n, at)| c.n / HEAD_EVERY_ENTRIES != n / HEAD_EVERY_ENTRIES || now - at >= HEAD_EVERY_MS);
                if due {
                    sqlx::query("INSERT INTO audit_heads (org_id, n, hash, at) VALUES ($1, $2, $3, $4)")
                        .bind(org.as_str()).bind(c.n as i64).bind(c.hash.as_str()).bind(now).execute(&mut *tx).await?;
                    c.recorded = Some((c.n, now));
                }
            }
            if last_pos > checkpoint {
                sqlx::query(
                    "INSERT INTO feed_checkpoints (subscriber, pos) VALUES ($1, $2)
                     ON CONFLICT (subscriber) DO UPDATE SET pos = excluded.pos",
                )
                .bind(SUBSCRIBER).bind(last_pos).execute(&mut *tx).await?;
            }
            for chunk in inbox_ids.chunks(500) {
                let mut qb = sqlx::QueryBuilder::new("DELETE FROM audit_inbox WHERE id IN (");
                let mut ids = qb.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            entries.len()
        });
        heads.extend(touched);
        Ok(appended)
    }

    /// The organisations whose chains an action on a case joins: its clinic, and its lab when
    /// the case is visible to the lab.
    pub async fn case_audit_orgs(&self, case: CaseId) -> Result<Vec<articula_protocol::OrgId>, StoreError> {
        let row: Option<(String, Option<String>, String, Option<String>)> = with_db!(self, pool => {
            sqlx::query("SELECT clinic_id, lab_id, status, status_before_hold FROM cases WHERE id = $1")
                .bind(case.to_string()).fetch_optional(pool).await?
                .map(|r| Ok::<_, StoreError>((r.try_get("clinic_id")?, r.try_get("lab_id")?, r.try_get("status")?, r.try_get("status_before_hold")?)))
                .transpose()?
        });
        let Some((clinic, lab, status, before_hold)) = row else { return Ok(Vec::new()) };
        let effective = if status == "on_hold" { before_hold.unwrap_or_default() } else { status };
        let mut orgs = vec![parse(&clinic, "clinic id")?];
        if let Some(lab) = lab.filter(|_| effective != "draft") {
            orgs.push(parse(&lab, "lab id")?);
        }
        Ok(orgs)
    }

    /// How far the audit log is behind: feed rows not chained yet, and inbox rows.
    pub async fn audit_backlog(&self) -> Result<(i64, i64), StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM event_feed WHERE pos > COALESCE((SELECT pos FROM feed_checkpoints WHERE subscriber = 'audit'), 0)) AS feed,
                        (SELECT COUNT(*) FROM audit_inbox) AS inbox",
            )
            .fetch_one(pool).await?;
            Ok((r.try_get("feed")?, r.try_get("inbox")?))
        })
    }

    /// Entries of an organisation's chain, in order, filtered.
    pub async fn audit_entries(&self, org: &str, f: &AuditFilter) -> Result<Vec<Entry>, StoreError> {
        let action = f
            .action
            .as_ref()
            .map(|a| format!("{}%", a.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        with_db!(self, pool => {
            sqlx::query(
                "SELECT org_id, n, at, actor_id, ip, action, target, case_id, details, source, prev_hash, hash
                 FROM audit_entries WHERE org_id = $1 AND n > $2
                   AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR action LIKE $4 ESCAPE '\\')
                   AND ($5 IS NULL OR case_id = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7)
                 ORDER BY n LIMIT $8",
            )
            .bind(org).bind(f.after_n as i64).bind(f.actor_id.as_deref()).bind(action.as_deref())
            .bind(f.case_id.as_deref()).bind(f.from).bind(f.until).bind(f.limit)
            .fetch_all(pool).await?
            .iter().map(entry_from_row).collect()
        })
    }

    /// The recorded heads of an organisation's chain (every organisation's with `None`).
    pub async fn audit_heads(&self, org: Option<&str>) -> Result<Vec<Head>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT org_id, n, hash, at FROM audit_heads WHERE $1 IS NULL OR org_id = $1 ORDER BY org_id, n")
                .bind(org).fetch_all(pool).await?
                .iter()
                .map(|r| Ok(Head {
                    org_id: r.try_get("org_id")?,
                    n: r.try_get::<i64, _>("n")? as u64,
                    hash: r.try_get("hash")?,
                    at: r.try_get("at")?,
                }))
                .collect()
        })
    }

    /// The organisations that have an audit chain.
    pub async fn audit_orgs(&self) -> Result<Vec<String>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT DISTINCT org_id FROM audit_entries ORDER BY org_id")
                .fetch_all(pool).await?
                .iter().map(|r| Ok(r.try_get("org_id")?)).collect()
        })
    }

    /// The last entry of an organisation's chain: its position and hash.
    pub async fn audit_chain_end(&self, org: &str) -> Result<Option<(u64, String)>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT n, hash FROM audit_entries WHERE org_id = $1 ORDER BY n DESC LIMIT 1")
                .bind(org).fetch_optional(pool).await?
                .map(|r| Ok((r.try_get::<i64, _>("n")? as u64, r.try_get("hash")?)))
                .transpose()
        })
    }

    /// The source (`event:<case>:<seq>`) of the last case event the audit actor has chained into
    /// an organisation's chain, from the event feed and its checkpoint (not from the chain): the
    /// chain must hold an entry for it, or its tail was cut.
    pub async fn audit_feed_tail(&self, org: &str) -> Result<Option<String>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "SELECT case_id, seq FROM event_feed
                 WHERE pos <= COALESCE((SELECT pos FROM feed_checkpoints WHERE subscriber = $1), 0)
                   AND (clinic_id = $2 OR lab_id = $2)
                 ORDER BY pos DESC LIMIT 1",
            )
            .bind(SUBSCRIBER).bind(org).fetch_optional(pool).await?
            .map(|r| Ok(format!("event:{}:{}", r.try_get::<String, _>("case_id")?, r.try_get::<i64, _>("seq")?)))
            .transpose()
        })
    }

    /// Whether an organisation's chain holds the entry of this source.
    pub async fn audit_has_source(&self, org: &str, source: &str) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            Ok(sqlx::query("SELECT 1 AS one FROM audit_entries WHERE org_id = $1 AND source = $2")
                .bind(org).bind(source).fetch_optional(pool).await?.is_some())
        })
    }
}
