//! The audit log (DESIGN §4, invariant 6): every durable case event and every security-relevant
//! action that is not a case event, as entries chained per organisation and append-only in the
//! database.
//!
//! Two durable queues feed it, both written in the same transaction as what they record:
//! `event_feed` (every committed case event, in commit order, with the organisations it
//! concerns) and `audit_inbox` (sign-ins, downloads, revocations…, see [`record`]). The
//! [`AuditActor`] tails both from a stored checkpoint and, in one transaction per batch, appends
//! the entries, records each chain's head and moves its checkpoint: after a crash or `kill -9`
//! every durable event has exactly one entry — none missing (the queues are durable), none twice
//! (the checkpoint moves with the entries, and `(org_id, source)` is unique).
//!
//! It sits beside the persistence actor, never inside a case actor: a case knows nothing of the
//! audit, and a slow audit never slows a case.

pub mod chain;
pub mod export;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use articula_protocol::{CaseId, EventData, OrgId, UserId};
use serde_json::{Value, json};

use crate::store::Db;

/// The organisation of entries that belong to none (a sign-in with an unknown e-mail).
pub const SYSTEM_ORG: &str = "system";
/// Items per batch (feed rows plus inbox rows).
pub const BATCH: i64 = 500;
/// How often the actor looks for new items when it found none.
const POLL: Duration = Duration::from_millis(200);

/// Something to audit that is not a case event.
#[derive(Clone, Debug)]
pub struct Record {
    /// The organisations whose chains it joins (none: the system chain).
    pub orgs: Vec<OrgId>,
    /// Who.
    pub actor_id: Option<UserId>,
    /// From where.
    pub ip: Option<String>,
    /// What, e.g. `auth.login`.
    pub action: &'static str,
    /// On what, e.g. `session:<id>`.
    pub target: Option<String>,
    /// The case it concerns.
    pub case_id: Option<CaseId>,
    /// More (never secrets, message or Rx text).
    pub details: Value,
}

impl Record {
    /// A record of `action` by `actor`.
    pub fn new(action: &'static str, actor_id: Option<UserId>, ip: Option<String>) -> Self {
        Self { orgs: Vec::new(), actor_id, ip, action, target: None, case_id: None, details: json!({}) }
    }

    /// In the chains of these organisations.
    pub fn orgs(mut self, orgs: impl IntoIterator<Item = OrgId>) -> Self {
        self.orgs = orgs.into_iter().collect();
        self.orgs.sort();
        self.orgs.dedup();
        self
    }

    /// About this target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Concerning this case.
    pub fn case(mut self, case: CaseId) -> Self {
        self.case_id = Some(case);
        self
    }

    /// With these details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// How a session appears in the audit log: a digest, not its id (a session id is half of a
/// signed download link, and auditors need to tell sessions apart, not to name them).
pub fn session_ref(session: &crate::store::sessions::SessionId) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(session.0.as_bytes());
    format!("session:{}", hex::encode(&d[..8]))
}

/// Writes a record to the durable audit inbox. A failure is logged and returned: callers on a
/// security path refuse what they were doing rather than do it unaudited.
pub async fn record(db: &Db, r: Record) -> Result<(), crate::store::StoreError> {
    db.audit_record(&r)
        .await
        .inspect_err(|e| tracing::error!(error = %e, action = r.action, "writing an audit record failed"))
}

/// The entry fields of a case event: its target and details. Never free text: no message, Rx
/// value, comment, label or file name — the event log keeps those, the audit says who did what.
pub fn event_summary(case: CaseId, data: &EventData) -> (String, Value) {
    let case_target = format!("case:{case}");
    match data {
        EventData::CaseCreated { clinic_id, doctor_id, lab_id, due_date, .. } => (
            case_target,
            json!({"clinic_id": clinic_id, "doctor_id": doctor_id, "lab_id": lab_id, "due_date": due_date}),
        ),
        EventData::CaseUpdated { label, due_date, lab_id } => {
            (case_target, json!({"label_changed": label.is_some(), "due_date": due_date, "lab_id": lab_id}))
        }
        EventData::StatusChanged { from, to, reason } => {
            (case_target, json!({"from": from, "to": to, "with_reason": reason.is_some()}))
        }
        EventData::MessagePosted { message_id, attachments, reply_to, mentions, .. } => {
            let mut d = json!({"attachments": attachments, "reply_to": reply_to});
            if !mentions.is_empty() {
                d["mentions"] = json!(mentions);
            }
            (format!("message:{message_id}"), d)
        }
        EventData::MessageEdited { message_id, .. } | EventData::MessageDeleted { message_id } => {
            (format!("message:{message_id}"), json!({}))
        }
        EventData::RxEdited { changes, voided_approvals } => {
            let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            (case_target, json!({"fields": fields, "voided_approvals": voided_approvals}))
        }
        EventData::RxSigned { rx_version } => (case_target, json!({"rx_version": rx_version})),
        EventData::RxProposed { proposal_id, changes, .. } => {
            let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            (format!("proposal:{proposal_id}"), json!({"fields": fields}))
        }
        EventData::RxProposalDecided { proposal_id, accepted, applied, voided_approvals, .. } => {
            let fields: Vec<&str> = applied.iter().map(|c| c.field.as_str()).collect();
            (
                format!("proposal:{proposal_id}"),
                json!({"accepted": accepted, "fields": fields, "voided_approvals": voided_approvals}),
            )
        }
        EventData::ApprovalRequested { approval_id, file_id, file_sha256, rx_version, .. } => (
            format!("approval:{approval_id}"),
            json!({"file_id": file_id, "file_sha256": file_sha256, "rx_version": rx_version}),
        ),
        EventData::ApprovalDecided { approval_id, decision, .. } => {
            (format!("approval:{approval_id}"), json!({"decision": decision}))
        }
        EventData::FileAdded { file_id, size, content_type, sha256, file_kind, voided_approvals, .. } => (
            format!("file:{file_id}"),
            json!({"size": size, "content_type": content_type, "sha256": sha256, "kind": file_kind, "voided_approvals": voided_approvals}),
        ),
        EventData::VoiceTranscribed { file_id, .. } => (format!("file:{file_id}"), json!({})),
        EventData::GrantGiven { user_id, capabilities, until, support } => (
            format!("user:{user_id}"),
            json!({"capabilities": capabilities, "until": until, "support": support}),
        ),
        EventData::GrantRevoked { user_id } | EventData::GrantExpired { user_id } => {
            (format!("user:{user_id}"), json!({}))
        }
    }
}

/// Chains what the feeds hold, batch after batch.
pub struct AuditActor {
    db: Db,
    /// Each organisation's chain head, as committed.
    heads: HashMap<String, crate::store::audit::ChainState>,
    busy: bool,
    /// Entries appended so far (for tests and metrics).
    appended: Arc<std::sync::atomic::AtomicU64>,
}

impl AuditActor {
    /// An audit actor over `db`.
    pub fn new(db: Db) -> Self {
        Self { db, heads: HashMap::new(), busy: false, appended: Arc::default() }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let db = self.db.clone();
        let mut heads = std::mem::take(&mut self.heads);
        let fut = async move {
            let res = db.chain_audit(&mut heads, BATCH).await;
            (res, heads)
        };
        ctx.spawn(fut.into_actor(self).map(|(res, heads), act, ctx| {
            act.busy = false;
            match res {
                Ok(n) => {
                    act.heads = heads;
                    if n > 0 {
                        act.appended.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        metrics::counter!("articula_audit_entries_total").increment(n as u64);
                    }
                    if n as i64 >= BATCH {
                        // More is waiting: go on at once.
                        act.tick(ctx);
                    }
                }
                Err(e) => {
                    // The transaction rolled back: nothing was appended; heads are re-read.
                    tracing::warn!(error = %e, "appending to the audit log failed; retrying");
                    metrics::counter!("articula_audit_failures_total").increment(1);
                }
            }
        }));
    }
}

impl Actor for AuditActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(POLL, |act, ctx| act.tick(ctx));
    }
}

/// What the check of one organisation's chain found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgVerified {
    /// The organisation.
    pub org_id: String,
    /// Entries checked.
    pub entries: u64,
    /// Recorded heads matched.
    pub heads: u64,
    /// The last entry's hash ([`chain::GENESIS`] for an empty chain).
    pub last_hash: String,
}

/// Checks one organisation's chain in the database: entries in order, page by page (memory
/// stays flat), then the recorded heads, then the event feed: the last case event the audit
/// actor chained for the organisation must have its entry, so a tail cut off after the last
/// recorded head is found too when it held case events.
pub async fn verify_org(
    db: &Db,
    org: &str,
) -> Result<Result<OrgVerified, chain::Broken>, crate::store::StoreError> {
    // What was chained is read before the chain: entries appended meanwhile only add to it.
    let feed_tail = db.audit_feed_tail(org).await?;
    let heads = db.audit_heads(Some(org)).await?;
    // The chain is checked incrementally: each page continues the previous one.
    let mut checker = chain::Checker::new(&heads);
    let mut after = 0;
    loop {
        let f = crate::store::audit::AuditFilter { after_n: after, limit: 5000, ..Default::default() };
        let page = db.audit_entries(org, &f).await?;
        let Some(last) = page.last() else { break };
        after = last.n;
        for e in page {
            if let Err(b) = checker.push(e) {
                return Ok(Err(b));
            }
        }
    }
    let (end, last_hash) =
        checker.last(org).map_or((0, chain::GENESIS.to_owned()), |(n, h)| (n, h.to_owned()));
    let v = match checker.finish() {
        Ok(v) => v,
        Err(b) => return Ok(Err(b)),
    };
    if let Some(source) = feed_tail
        && !db.audit_has_source(org, &source).await?
    {
        return Ok(Err(chain::Broken {
            org_id: org.to_owned(),
            n: end + 1,
            reason: format!(
                "the chain ends at entry {end} but the event log holds case events chained after it \
                 (the last, {source}, has no entry): the tail was cut"
            ),
        }));
    }
    Ok(Ok(OrgVerified { org_id: org.to_owned(), entries: v.entries, heads: v.heads, last_hash }))
}

/// Checks every chain in the database (or one organisation's), as [`verify_org`] does.
pub async fn verify_db(
    db: &Db,
    org: Option<&str>,
) -> Result<Result<chain::Verified, chain::Broken>, crate::store::StoreError> {
    let orgs = match org {
        Some(o) => vec![o.to_owned()],
        None => db.audit_orgs().await?,
    };
    let mut total = chain::Verified::default();
    for org in orgs {
        match verify_org(db, &org).await? {
            Ok(v) => {
                total.entries += v.entries;
                total.orgs += u64::from(v.entries > 0);
                total.heads += v.heads;
            }
            Err(b) => return Ok(Err(b)),
        }
    }
    Ok(Ok(total))
}
