//! The event log and its projections: the actors' storage port, case creation, and the REST
//! API's reads of a case's events, messages, Rx and approvals.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use articula_actors::ports::{
    self, CaseRow, CaseStore, FoundCommand, LoadedCase, LoadedSnapshot, PersistItem, StoreErrorKind,
    StoredEvent, StoredMessage,
};
use articula_protocol::{CaseId, CaseStatus, EventData, MessageId, UserId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Db, StoreError, parse};
use crate::with_db;

fn event_from_row<R: Row>(r: &R, case_id: CaseId) -> Result<StoredEvent, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let actor: String = r.try_get("actor_id")?;
    let data: String = r.try_get("data")?;
    let digest: Option<String> = r.try_get("command_digest")?;
    Ok(StoredEvent {
        case_id,
        seq: r.try_get::<i64, _>("seq")? as u64,
        at: r.try_get("at")?,
        actor: parse(&actor, "actor id")?,
        client_id: r.try_get("client_id")?,
        digest: digest.and_then(|d| u64::from_str_radix(&d, 16).ok()),
        ip: None,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
    })
}

/// The PostgreSQL advisory lock that orders writes to `event_feed`.
const FEED_LOCK: i64 = 0x4172_7469_6375_6c61; // "Articula"

/// The columns [`event_from_row`] reads.
const EVENT_COLS: &str = "seq, at, actor_id, data, client_id, command_digest";

fn digest_hex(d: Option<u64>) -> Option<String> {
    d.map(|d| format!("{d:016x}"))
}

/// Whether retrying a failed statement can help ([`StoreError::is_transient`]), or the command
/// id was used before. The group commit isolates permanent failures, so one bad item fails only
/// itself.
fn classify(e: &StoreError) -> StoreErrorKind {
    if let StoreError::Db(sqlx::Error::Database(d)) = e
        && d.is_unique_violation()
        && (d.constraint() == Some("events_client_id") || d.message().contains("client_id"))
    {
        return StoreErrorKind::Duplicate;
    }
    if e.is_transient() { StoreErrorKind::Transient } else { StoreErrorKind::Permanent }
}

fn port_error(e: StoreError) -> ports::StoreError {
    ports::StoreError { kind: classify(&e), message: e.to_string() }
}

/// A chat message as the REST API shows it (deleted messages keep no text).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Id.
    pub id: String,
    /// Seq of the event that posted it.
    pub seq: u64,
    /// Author.
    pub author_id: String,
    /// Text, or null when deleted.
    pub text: Option<String>,
    /// Attached file ids.
    pub attachments: Vec<String>,
    /// Message replied to.
    pub reply_to: Option<String>,
    /// Users the message mentions.
    pub mentions: Vec<String>,
    /// Posted (ms).
    pub created_at: i64,
    /// Last edited (ms).
    pub edited_at: Option<i64>,
    /// Deleted (ms).
    pub deleted_at: Option<i64>,
}

/// One Rx field.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RxFieldView {
    /// Path.
    pub field: String,
    /// Value.
    pub value: Option<String>,
    /// Version (seq of the last change).
    pub version: u64,
    /// Who changed it last.
    pub updated_by: String,
    /// When (ms).
    pub updated_at: i64,
}

/// An open or decided Rx proposal.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProposalView {
    /// Id.
    pub id: String,
    /// Seq of the proposal event.
    pub seq: u64,
    /// Proposed by.
    pub proposed_by: String,
    /// The changes.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    /// Note.
    pub note: Option<String>,
    /// `open`, `accepted` or `declined`.
    pub status: String,
}

/// An approval request.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    /// Id.
    pub id: String,
    /// Seq of the request event.
    pub seq: u64,
    /// Design file.
    pub file_id: String,
    /// Its SHA-256.
    pub file_sha256: String,
    /// Rx version at request time.
    pub rx_version: u64,
    /// Requested by.
    pub requested_by: String,
    /// Requested (ms).
    pub requested_at: i64,
    /// Request note.
    pub comment: Option<String>,
    /// `pending`, `approved`, `rejected`, `voided`.
    pub status: String,
    /// Decided by.
    pub decided_by: Option<String>,
    /// Decided (ms).
    pub decided_at: Option<i64>,
    /// The doctor's comment.
    pub decision_comment: Option<String>,
    /// Seq of the event that voided it.
    pub voided_seq: Option<u64>,
}

impl Db {
    /// Creates a case with its first event, `case_created`, in one transaction.
    pub async fn create_case(
        &self,
        first: &StoredEvent,
        row: &CaseRow,
        clinic: &str,
        doctor: &str,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_string(&first.data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let is_pg = matches!(self, Db::Postgres(_));
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO cases (id, clinic_id, doctor_id, lab_id, label, status, due_date, created_at, last_activity, last_seq, rx_version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, 0)",
            )
            .bind(row.case_id.to_string()).bind(clinic).bind(doctor).bind(row.lab_id.map(|l| l.to_string()))
            .bind(&row.label).bind(row.status.as_str()).bind(&row.due_date).bind(first.at).bind(first.seq as i64)
            .execute(&mut *tx).await?;
            sqlx::query("INSERT INTO events (case_id, seq, kind, actor_id, at, data, client_id, command_digest, ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(first.case_id.to_string()).bind(first.seq as i64).bind(first.data.kind())
                .bind(first.actor.to_string()).bind(first.at).bind(data).bind(&first.client_id)
                .bind(digest_hex(first.digest)).bind(first.ip.as_deref())
                .execute(&mut *tx).await?;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(FEED_LOCK).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO event_feed (case_id, seq, clinic_id, lab_id) VALUES ($1, $2, $3, NULL)")
                .bind(first.case_id.to_string()).bind(first.seq as i64).bind(clinic)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Events `(after, upto]` of a case, in order, at most `limit`.
    pub async fn events_between(
        &self,
        case: CaseId,
        after: u64,
        upto: u64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLS} FROM events WHERE case_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
            )))
            .bind(case.to_string()).bind(after as i64).bind(upto.min(i64::MAX as u64) as i64).bind(limit)
            .fetch_all(pool).await?
            .iter().map(|r| event_from_row(r, case)).collect()
        })
    }

    /// A page of events `(after, upto]` (at most `limit`) as members of the case may read
    /// them: the text of a message deleted since is withheld (it stays in the log, for the
    /// legal record and the audit export).
    pub async fn events_page(
        &self,
        case: CaseId,
        after: u64,
        upto: u64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut page = self.events_between(case, after, upto, limit).await?;
        let (Some(first), Some(last)) = (page.first().map(|e| e.seq), page.last().map(|e| e.seq)) else {
            return Ok(page);
        };
        // Fixed query texts only (an `IN (…)` list of varying length would be a new prepared
        // statement per length on every pooled connection): the deleted messages posted within
        // the page's range, and, one by one, those an edit in the page refers to (rare).
        let edited: Vec<String> = page
            .iter()
            .filter_map(|e| match &e.data {
                EventData::MessageEdited { message_id, .. } => Some(message_id.to_string()),
                _ => None,
            })
            .collect();
        let mut deleted: std::collections::HashSet<String> = with_db!(self, pool => {
            sqlx::query("SELECT id FROM messages WHERE case_id = $1 AND seq >= $2 AND seq <= $3 AND deleted_at IS NOT NULL")
                .bind(case.to_string()).bind(first as i64).bind(last as i64)
                .fetch_all(pool).await?
                .iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?
        });
        for id in edited {
            let gone = with_db!(self, pool => {
                sqlx::query("SELECT 1 AS one FROM messages WHERE id = $1 AND deleted_at IS NOT NULL")
                    .bind(&id).fetch_optional(pool).await?.is_some()
            });
            if gone {
                deleted.insert(id);
            }
        }
        for e in &mut page {
            redact_deleted(&mut e.data, &deleted);
        }
        Ok(page)
    }

    /// Events of the given kinds, in order (at most `limit`, from the first).
    pub async fn events_of_kinds(
        &self,
        case: CaseId,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        with_db!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE case_id = "));
            qb.push_bind(case.to_string()).push(" AND kind IN (");
            let mut list = qb.separated(", ");
            for k in kinds {
                list.push_bind(*k);
            }
            qb.push(") ORDER BY seq LIMIT ").push_bind(limit);
            qb.build().fetch_all(pool).await?.iter().map(|r| event_from_row(r, case)).collect()
        })
    }

    /// Messages of a case before `before_seq` (newest page first, returned in order).
    pub async fn messages(
        &self,
        case: CaseId,
        before_seq: Option<u64>,
        limit: i64,
    ) -> Result<Vec<MessageView>, StoreError> {
        let mut rows: Vec<MessageView> = with_db!(self, pool => {
            sqlx::query(
                "SELECT id, seq, author_id, text, attachments, reply_to, mentions, created_at, edited_at, deleted_at FROM messages
                 WHERE case_id = $1 AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
            )
            .bind(case.to_string()).bind(before_seq.map(|s| s as i64)).bind(limit)
            .fetch_all(pool).await?
            .iter()
            .map(|r| {
                let deleted_at: Option<i64> = r.try_get("deleted_at")?;
                let attachments: String = r.try_get("attachments")?;
                Ok(MessageView {
                    id: r.try_get("id")?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    author_id: r.try_get("author_id")?,
                    text: if deleted_at.is_some() { None } else { Some(r.try_get("text")?) },
                    attachments: if deleted_at.is_some() { Vec::new() } else { serde_json::from_str(&attachments).unwrap_or_default() },
                    reply_to: r.try_get("reply_to")?,
                    mentions: serde_json::from_str(&r.try_get::<String, _>("mentions")?).unwrap_or_default(),
                    created_at: r.try_get("created_at")?,
                    edited_at: r.try_get("edited_at")?,
                    deleted_at,
                })
            })
            .collect::<Result<_, StoreError>>()?
        });
        rows.reverse();
        Ok(rows)
    }

    /// The current Rx fields.
    pub async fn rx_fields(&self, case: CaseId) -> Result<Vec<RxFieldView>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT field, value, version, updated_by, updated_at FROM rx_fields WHERE case_id = $1 ORDER BY field")
                .bind(case.to_string()).fetch_all(pool).await?
                .iter()
                .map(|r| Ok(RxFieldView {
                    field: r.try_get("field")?,
                    value: r.try_get("value")?,
                    version: r.try_get::<i64, _>("version")? as u64,
                    updated_by: r.try_get("updated_by")?,
                    updated_at: r.try_get("updated_at")?,
                }))
                .collect()
        })
    }

    /// Rx proposals.
    pub async fn rx_proposals(&self, case: CaseId) -> Result<Vec<ProposalView>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT id, seq, proposed_by, changes, note, status FROM rx_proposals WHERE case_id = $1 ORDER BY seq")
                .bind(case.to_string()).fetch_all(pool).await?
                .iter()
                .map(|r| {
                    let changes: String = r.try_get("changes")?;
                    Ok(ProposalView {
                        id: r.try_get("id")?,
                        seq: r.try_get::<i64, _>("seq")? as u64,
                        proposed_by: r.try_get("proposed_by")?,
                        changes: serde_json::from_str(&changes).unwrap_or_default(),
                        note: r.try_get("note")?,
                        status: r.try_get("status")?,
                    })
                })
                .collect()
        })
    }

    /// Approvals of a case.
    pub async fn approvals(&self, case: CaseId) -> Result<Vec<ApprovalView>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "SELECT id, seq, file_id, file_sha256, rx_version, requested_by, requested_at, comment, status,
                        decided_by, decided_at, decision_comment, voided_seq FROM approvals WHERE case_id = $1 ORDER BY seq",
            )
            .bind(case.to_string()).fetch_all(pool).await?
            .iter()
            .map(|r| Ok(ApprovalView {
                id: r.try_get("id")?,
                seq: r.try_get::<i64, _>("seq")? as u64,
                file_id: r.try_get("file_id")?,
                file_sha256: r.try_get("file_sha256")?,
                rx_version: r.try_get::<i64, _>("rx_version")? as u64,
                requested_by: r.try_get("requested_by")?,
                requested_at: r.try_get("requested_at")?,
                comment: r.try_get("comment")?,
                status: r.try_get("status")?,
                decided_by: r.try_get("decided_by")?,
                decided_at: r.try_get("decided_at")?,
                decision_comment: r.try_get("decision_comment")?,
                voided_seq: r.try_get::<Option<i64>, _>("voided_seq")?.map(|s| s as u64),
            }))
            .collect()
        })
    }

    async fn load_case(&self, case: CaseId, version: u32) -> Result<Option<LoadedCase>, StoreError> {
        let exists = with_db!(self, pool => {
            sqlx::query("SELECT 1 AS one FROM cases WHERE id = $1").bind(case.to_string()).fetch_optional(pool).await?.is_some()
        });
        if !exists {
            return Ok(None);
        }
        let snapshot = with_db!(self, pool => {
            sqlx::query("SELECT seq, data FROM case_snapshots WHERE case_id = $1 AND version = $2")
                .bind(case.to_string()).bind(i64::from(version)).fetch_optional(pool).await?
                .map(|r| Ok::<_, StoreError>(LoadedSnapshot { seq: r.try_get::<i64, _>("seq")? as u64, data: r.try_get("data")? }))
                .transpose()?
        });
        let after = snapshot.as_ref().map_or(0, |s| s.seq);
        let events = self.events_between(case, after, u64::MAX, i64::MAX).await?;
        let reads = with_db!(self, pool => {
            sqlx::query("SELECT user_id, seq FROM read_marks WHERE case_id = $1")
                .bind(case.to_string()).fetch_all(pool).await?
                .iter()
                .map(|r| {
                    let u: String = r.try_get("user_id")?;
                    Ok((parse::<UserId>(&u, "user id")?, r.try_get::<i64, _>("seq")? as u64))
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(Some(LoadedCase { snapshot, events, reads }))
    }

    /// A chat message's author and state, as committed.
    pub async fn message_ref(
        &self,
        case: CaseId,
        id: MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query("SELECT author_id, seq, deleted_at FROM messages WHERE id = $1 AND case_id = $2")
                .bind(id.to_string()).bind(case.to_string()).fetch_optional(pool).await?;
            match r {
                None => Ok(None),
                Some(r) => {
                    let author: String = r.try_get("author_id")?;
                    Ok(Some(StoredMessage {
                        author: parse(&author, "author id")?,
                        deleted: r.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
                        seq: r.try_get::<i64, _>("seq")? as u64,
                    }))
                }
            }
        })
    }

    /// The event a command id created, with its command digest.
    pub async fn find_command(
        &self,
        case: CaseId,
        actor: UserId,
        client_id: &str,
    ) -> Result<Option<(u64, Option<u64>)>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query("SELECT seq, command_digest FROM events WHERE case_id = $1 AND actor_id = $2 AND client_id = $3")
                .bind(case.to_string()).bind(actor.to_string()).bind(client_id).fetch_optional(pool).await?;
            match r {
                None => Ok(None),
                Some(r) => {
                    let digest: Option<String> = r.try_get("command_digest")?;
                    Ok(Some((r.try_get::<i64, _>("seq")? as u64, digest.and_then(|d| u64::from_str_radix(&d, 16).ok()))))
                }
            }
        })
    }

    /// Commits a group of items in one transaction: the events, then their projections.
    async fn commit_items(&self, items: &[PersistItem]) -> Result<(), StoreError> {
        let mut last_rows: HashMap<CaseId, &CaseRow> = HashMap::new();
        let mut events = Vec::new();
        let mut feed = Vec::new();
        for item in items {
            if let PersistItem::Event { event, row } = item {
                last_rows.insert(row.case_id, row);
                let data =
                    serde_json::to_string(&event.data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                events.push((event, data));
                // The organisations whose audit chains the event joins: the clinic, and the
                // lab when the case is visible to it after the event.
                let effective =
                    if row.status == CaseStatus::OnHold { row.status_before_hold } else { Some(row.status) };
                let lab = row.lab_id.filter(|_| effective != Some(CaseStatus::Draft));
                feed.push((event.case_id, event.seq, row.clinic_id, lab));
            }
        }
        let is_pg = matches!(self, Db::Postgres(_));
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // The log first: one multi-row insert per chunk (bounded by the parameter limits).
            for chunk in events.chunks(500) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO events (case_id, seq, kind, actor_id, at, data, client_id, command_digest, ip) ");
                qb.push_values(chunk, |mut b, (e, data)| {
                    b.push_bind(e.case_id.to_string())
                        .push_bind(e.seq as i64)
                        .push_bind(e.data.kind())
                        .push_bind(e.actor.to_string())
                        .push_bind(e.at)
                        .push_bind(data.as_str())
                        .push_bind(e.client_id.as_deref())
                        .push_bind(digest_hex(e.digest))
                        .push_bind(e.ip.as_deref());
                });
                qb.build().execute(&mut *tx).await?;
            }
            // The feed of durable subscribers (audit), in commit order.
            if is_pg && !feed.is_empty() {
                // PostgreSQL hands out sequence values before commit: held until this commit,
                // the lock makes feed positions follow commit order (case creations also
                // write the feed), so a subscriber's checkpoint never passes a row that is not
                // committed yet.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(FEED_LOCK).execute(&mut *tx).await?;
            }
            for chunk in feed.chunks(1000) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO event_feed (case_id, seq, clinic_id, lab_id) ");
                qb.push_values(chunk, |mut b, (case, seq, clinic, lab)| {
                    b.push_bind(case.to_string())
                        .push_bind(*seq as i64)
                        .push_bind(clinic.to_string())
                        .push_bind(lab.map(|l| l.to_string()));
                });
                qb.build().execute(&mut *tx).await?;
            }
            // Chat messages, the bulk of the traffic: also one insert per chunk.
            let posted: Vec<_> = events.iter().filter_map(|(e, _)| match &e.data {
                EventData::MessagePosted { message_id, text, attachments, reply_to, mentions } => Some((e, message_id, text, attachments, reply_to, mentions)),
                _ => None,
            }).collect();
            for chunk in posted.chunks(500) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO messages (id, case_id, seq, author_id, text, attachments, reply_to, created_at, mentions) ");
                qb.push_values(chunk, |mut b, (e, id, text, attachments, reply_to, mentions)| {
                    b.push_bind(id.to_string())
                        .push_bind(e.case_id.to_string())
                        .push_bind(e.seq as i64)
                        .push_bind(e.actor.to_string())
                        .push_bind(text.as_str())
                        .push_bind(serde_json::to_string(attachments).unwrap_or_else(|_| "[]".into()))
                        .push_bind(reply_to.map(|r| r.to_string()))
                        .push_bind(e.at)
                        .push_bind(serde_json::to_string(mentions).unwrap_or_else(|_| "[]".into()));
                });
                qb.build().execute(&mut *tx).await?;
            }
            for (e, _) in &events {
                let case = e.case_id.to_string();
                let seq = e.seq as i64;
                for a in e.data.voided_approvals() {
                    sqlx::query("UPDATE approvals SET status = 'voided', voided_seq = $2 WHERE id = $1")
                        .bind(a.to_string()).bind(seq).execute(&mut *tx).await?;
                }
                match &e.data {
                    EventData::MessageEdited { message_id, text } => {
                        sqlx::query("UPDATE messages SET text = $2, edited_at = $3 WHERE id = $1")
                            .bind(message_id.to_string()).bind(text).bind(e.at).execute(&mut *tx).await?;
                    }
                    EventData::MessageDeleted { message_id } => {
                        sqlx::query("UPDATE messages SET deleted_at = $2 WHERE id = $1")
                            .bind(message_id.to_string()).bind(e.at).execute(&mut *tx).await?;
                    }
                    EventData::RxEdited { changes, .. } | EventData::RxProposalDecided { applied: changes, .. } => {
                        for c in changes {
                            sqlx::query(
                                "INSERT INTO rx_fields (case_id, field, value, version, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                                 ON CONFLICT (case_id, field) DO UPDATE SET value = excluded.value, version = excluded.version,
                                   updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                            )
                            .bind(&case).bind(&c.field).bind(&c.value).bind(seq).bind(e.actor.to_string()).bind(e.at)
                            .execute(&mut *tx).await?;
                        }
                        if let EventData::RxProposalDecided { proposal_id, accepted, comment, .. } = &e.data {
                            sqlx::query("UPDATE rx_proposals SET status = $2, decided_by = $3, decided_at = $4, comment = $5 WHERE id = $1")
                                .bind(proposal_id.to_string()).bind(if *accepted { "accepted" } else { "declined" })
                                .bind(e.actor.to_string()).bind(e.at).bind(comment)
                                .execute(&mut *tx).await?;
                        }
                    }
                    EventData::RxProposed { proposal_id, changes, note } => {
                        sqlx::query("INSERT INTO rx_proposals (id, case_id, seq, proposed_by, changes, note, status) VALUES ($1, $2, $3, $4, $5, $6, 'open')")
                            .bind(proposal_id.to_string()).bind(&case).bind(seq).bind(e.actor.to_string())
                            .bind(serde_json::to_string(changes).unwrap_or_else(|_| "[]".into())).bind(note)
                            .execute(&mut *tx).await?;
                    }
                    EventData::ApprovalRequested { approval_id, file_id, file_sha256, rx_version, comment } => {
                        sqlx::query(
                            "INSERT INTO approvals (id, case_id, seq, file_id, file_sha256, rx_version, requested_by, requested_at, comment, status)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
                        )
                        .bind(approval_id.to_string()).bind(&case).bind(seq).bind(file_id.to_string()).bind(file_sha256)
                        .bind(*rx_version as i64).bind(e.actor.to_string()).bind(e.at).bind(comment)
                        .execute(&mut *tx).await?;
                    }
                    EventData::GrantGiven { user_id, capabilities, until, support } => {
                        let caps: Vec<&str> = capabilities.iter().map(|c| c.as_str()).collect();
                        sqlx::query(
                            "INSERT INTO case_grants (case_id, user_id, capabilities, until, support, given_by, given_at, seq)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                             ON CONFLICT (case_id, user_id) DO UPDATE SET capabilities = excluded.capabilities,
                               until = excluded.until, support = excluded.support, given_by = excluded.given_by,
                               given_at = excluded.given_at, seq = excluded.seq",
                        )
                        .bind(&case).bind(user_id.to_string()).bind(caps.join(",")).bind(*until).bind(*support)
                        .bind(e.actor.to_string()).bind(e.at).bind(seq)
                        .execute(&mut *tx).await?;
                    }
                    EventData::GrantRevoked { user_id } | EventData::GrantExpired { user_id } => {
                        sqlx::query("DELETE FROM case_grants WHERE case_id = $1 AND user_id = $2")
                            .bind(&case).bind(user_id.to_string()).execute(&mut *tx).await?;
                    }
                    EventData::ApprovalDecided { approval_id, decision, comment } => {
                        let status = match decision {
                            articula_protocol::Decision::Approve => "approved",
                            articula_protocol::Decision::Reject => "rejected",
                        };
                        sqlx::query("UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, decision_comment = $5 WHERE id = $1")
                            .bind(approval_id.to_string()).bind(status).bind(e.actor.to_string()).bind(e.at).bind(comment)
                            .execute(&mut *tx).await?;
                    }
                    _ => {}
                }
            }
            // The case projections: one statement per chunk, not one per case. A batch of a busy
            // minute touches hundreds of cases; on PostgreSQL a round trip each made the commit
            // slower than the events arrived (load test S3), and a slow commit only grows the
            // next batch. `WITH v(…) AS (VALUES …) UPDATE … FROM v` reads the same on both.
            let rows: Vec<&CaseRow> = last_rows.values().copied().collect();
            for chunk in rows.chunks(1000) {
                let mut qb = sqlx::QueryBuilder::new(
                    "WITH v (id, label, status, status_before_hold, due_date, lab_id, last_activity, last_seq, rx_version) AS (",
                );
                qb.push_values(chunk, |mut b, row| {
                    b.push_bind(row.case_id.to_string())
                        .push_bind(row.label.as_str())
                        .push_bind(row.status.as_str())
                        .push_bind(row.status_before_hold.map(|s| s.as_str()))
                        .push_bind(row.due_date.as_deref())
                        .push_bind(row.lab_id.map(|l| l.to_string()))
                        .push_bind(row.last_activity)
                        .push_bind(row.last_seq as i64)
                        .push_bind(row.rx_version as i64);
                });
                qb.push(
                    ") UPDATE cases SET label = v.label, status = v.status, status_before_hold = v.status_before_hold,
                       due_date = v.due_date, lab_id = v.lab_id, last_activity = v.last_activity,
                       last_seq = v.last_seq, rx_version = v.rx_version FROM v WHERE cases.id = v.id",
                );
                qb.build().execute(&mut *tx).await?;
            }
            for item in items {
                if let PersistItem::Snapshot { case_id, seq, version, data } = item {
                    sqlx::query(
                        "INSERT INTO case_snapshots (case_id, seq, version, data, at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (case_id) DO UPDATE SET seq = excluded.seq, version = excluded.version,
                           data = excluded.data, at = excluded.at",
                    )
                    .bind(case_id.to_string()).bind(*seq as i64).bind(i64::from(*version)).bind(data.as_str())
                    .bind(articula_actors::clock::now_ms())
                    .execute(&mut *tx).await?;
                }
                if let PersistItem::ReadMark { case_id, user_id, seq, at } = item {
                    sqlx::query(
                        "INSERT INTO read_marks (case_id, user_id, seq, at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (case_id, user_id) DO UPDATE SET seq = excluded.seq, at = excluded.at
                         WHERE excluded.seq > read_marks.seq",
                    )
                    .bind(case_id.to_string()).bind(user_id.to_string()).bind(*seq as i64).bind(*at)
                    .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// The actors' storage port on the configured database.
pub struct SqlCaseStore {
    db: Db,
    writer: Db,
    /// Raised by the checkpointer when SQLite's write-ahead log should be emptied.
    truncate_wal: Arc<AtomicBool>,
}

impl SqlCaseStore {
    /// A store that loads cases from `db` and commits through `writer` ([`Db::log_writer`]),
    /// emptying SQLite's log between commits when `truncate_wal` asks ([`Db::spawn_checkpointer`]).
    pub fn new(db: Db, writer: Db, truncate_wal: Arc<AtomicBool>) -> Self {
        Self { db, writer, truncate_wal }
    }
}

impl CaseStore for SqlCaseStore {
    fn load(
        &self,
        case_id: CaseId,
        snapshot_version: u32,
    ) -> BoxFuture<'static, Result<Option<LoadedCase>, ports::StoreError>> {
        let db = self.db.clone();
        async move { db.load_case(case_id, snapshot_version).await.map_err(port_error) }.boxed()
    }

    fn commit(&self, items: Vec<PersistItem>) -> BoxFuture<'static, Result<(), ports::StoreError>> {
        let db = self.writer.clone();
        async move { db.commit_items(&items).await.map_err(port_error) }.boxed()
    }

    fn message(
        &self,
        case_id: CaseId,
        message_id: MessageId,
    ) -> BoxFuture<'static, Result<Option<StoredMessage>, ports::StoreError>> {
        let db = self.db.clone();
        async move { db.message_ref(case_id, message_id).await.map_err(port_error) }.boxed()
    }

    fn find_command(
        &self,
        case_id: CaseId,
        actor: UserId,
        client_id: String,
    ) -> BoxFuture<'static, FoundCommand> {
        let db = self.db.clone();
        async move { db.find_command(case_id, actor, &client_id).await.map_err(port_error) }.boxed()
    }

    fn between_commits(&self) -> Option<BoxFuture<'static, ()>> {
        let Db::Sqlite(pool) = &self.writer else { return None };
        if !self.truncate_wal.swap(false, Ordering::Relaxed) {
            return None;
        }
        let pool = pool.clone();
        Some(async move { super::truncate_wal(&pool).await }.boxed())
    }
}

/// Withholds the text of a deleted message from an event that carries it.
pub fn redact_deleted(data: &mut EventData, deleted: &std::collections::HashSet<String>) {
    match data {
        EventData::MessagePosted { message_id, text, attachments, .. }
            if deleted.contains(&message_id.to_string()) =>
        {
            text.clear();
            attachments.clear();
        }
        EventData::MessageEdited { message_id, text } if deleted.contains(&message_id.to_string()) => {
            text.clear()
        }
        _ => {}
    }
}
