//! The audit log: one entry per durable event (and per audited action), chained per
//! organisation, append-only in the database, verifiable.

use std::time::{Duration, Instant};

use articula_protocol::*;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    every_event_gets_one_entry_in_each_chain_it_concerns,
    the_database_refuses_to_change_the_log_and_tampering_is_named,
    sign_ins_downloads_and_revocations_are_audited,
);

/// Waits until the audit actor has chained everything committed so far.
pub async fn audit_caught_up(app: &TestApp) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (feed, inbox) = app.state.db.audit_backlog().await.unwrap();
        if feed == 0 && inbox == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the audit log stays behind: {feed} events, {inbox} records");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn every_event_gets_one_entry_in_each_chain_it_concerns(app: TestApp) {
    let w = app.world().await;
    let draft = app.case(&w.doctor, "Draft", Some(w.lab)).await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.post(draft, "private note").await;
    for i in 0..5 {
        doctor.post(case, &format!("message {i} with a secret word")).await;
    }
    audit_caught_up(&app).await;
    let count = |q: String| {
        let app = &app;
        async move { app.count(&q).await }
    };
    let events = count(format!("SELECT COUNT(*) FROM events WHERE case_id IN ('{draft}', '{case}')")).await;
    let clinic = count(format!(
        "SELECT COUNT(*) FROM audit_entries WHERE org_id = '{}' AND action LIKE 'case.%'",
        w.clinic
    ))
    .await;
    assert_eq!(clinic, events, "one entry per event in the clinic's chain");
    // The lab's chain holds what it could see: the submitted case from its submission on.
    let lab = count(format!(
        "SELECT COUNT(*) FROM audit_entries WHERE org_id = '{}' AND action LIKE 'case.%'",
        w.lab
    ))
    .await;
    let visible = count(format!("SELECT COUNT(*) FROM events WHERE case_id = '{case}' AND seq >= 2")).await;
    assert_eq!(lab, visible);
    let draft_in_lab = count(format!(
        "SELECT COUNT(*) FROM audit_entries WHERE org_id = '{}' AND case_id = '{draft}'",
        w.lab
    ))
    .await;
    assert_eq!(draft_in_lab, 0, "the lab's chain knows nothing of a draft");
    // No chat text in the audit log: it says who did what, the event log keeps the words.
    assert_eq!(count("SELECT COUNT(*) FROM audit_entries WHERE details LIKE '%secret%'".into()).await, 0);
    let verified = articula::audit::verify_db(&app.state.db, None).await.unwrap().unwrap();
    assert_eq!(
        verified.entries as i64,
        clinic
            + lab
            + count("SELECT COUNT(*) FROM audit_entries WHERE action NOT LIKE 'case.%'".into()).await
    );
    assert!(verified.heads >= 2);
}

async fn the_database_refuses_to_change_the_log_and_tampering_is_named(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    for i in 0..5 {
        doctor.post(case, &format!("m{i}")).await;
    }
    audit_caught_up(&app).await;
    let org = w.clinic.to_string();
    // Append-only: UPDATE and DELETE are refused by the database itself.
    for q in [
        format!("UPDATE audit_entries SET actor_id = NULL WHERE org_id = '{org}' AND n = 3"),
        format!("DELETE FROM audit_entries WHERE org_id = '{org}' AND n = 3"),
        format!("DELETE FROM audit_heads WHERE org_id = '{org}'"),
    ] {
        let res = articula::with_db!(&app.state.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(q.clone())).execute(pool).await.map(|_| ())
        });
        assert!(res.is_err(), "{q} was allowed");
    }
    assert!(articula::audit::verify_db(&app.state.db, Some(&org)).await.unwrap().is_ok());
    // Someone with the database's keys bypasses the triggers and edits entry 3: named.
    bypass(&app, &format!("UPDATE audit_entries SET ip = '10.9.9.9' WHERE org_id = '{org}' AND n = 3")).await;
    let broken = articula::audit::verify_db(&app.state.db, Some(&org)).await.unwrap().unwrap_err();
    assert_eq!((broken.org_id.as_str(), broken.n), (org.as_str(), 3), "{broken}");
}

/// Runs a statement with the audit triggers out of the way (what an attacker with the
/// database's credentials could do), then puts them back.
async fn bypass(app: &TestApp, q: &str) {
    match app.backend {
        Backend::Postgres => {
            app.sql("ALTER TABLE audit_entries DISABLE TRIGGER USER").await;
            app.sql(q).await;
            app.sql("ALTER TABLE audit_entries ENABLE TRIGGER USER").await;
        }
        Backend::Sqlite => {
            let articula::store::Db::Sqlite(pool) = &app.state.db else { unreachable!() };
            let mut conn = pool.acquire().await.unwrap();
            for stmt in [
                "DROP TRIGGER audit_entries_no_update",
                "DROP TRIGGER audit_entries_no_delete",
                q,
                "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
                "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned())).execute(&mut *conn).await.unwrap();
            }
        }
    }
}

/// Entries of a chain, as (action, actor, ip, target).
async fn entries(app: &TestApp, org: &str) -> Vec<articula::audit::chain::Entry> {
    let f = articula::store::audit::AuditFilter { limit: 10_000, ..Default::default() };
    app.state.db.audit_entries(org, &f).await.unwrap()
}

async fn sign_ins_downloads_and_revocations_are_audited(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // A failed sign-in of a known user, one of an unknown e-mail, then a lockout.
    assert_eq!(app.login_raw(&w.tech.email, "wrong password!", "lab").await.status(), 401);
    assert_eq!(app.login_raw("nobody@t.test", "wrong password!", "clinic").await.status(), 401);
    for _ in 0..5 {
        app.login_raw(&w.doctor2.email, "wrong password!", "clinic").await;
    }
    // A download through a signed link.
    let file = app.upload(&w.tech, case, "prep.stl", Some("scan"), &crate::files::stl(50), 1).await;
    let link: serde_json::Value = app
        .post(&format!("/api/v1/files/{file}/link"), &w.doctor, serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let res = app.http.get(url).bearer_auth(&w.doctor.access).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Logging out, leaving the lab.
    assert_eq!(app.post("/api/v1/auth/logout", &w.admin, serde_json::json!({})).await.status(), 204);
    let now = articula_actors::clock::now_ms();
    app.state.db.remove_membership(w.lab_admin.user_id, w.lab, Role::LabAdmin, now).await.unwrap();
    audit_caught_up(&app).await;

    let clinic = entries(&app, &w.clinic.to_string()).await;
    let lab = entries(&app, &w.lab.to_string()).await;
    let system = entries(&app, articula::audit::SYSTEM_ORG).await;
    let has = |list: &[articula::audit::chain::Entry], action: &str, actor: Option<UserId>| {
        list.iter().any(|e| {
            e.action == action
                && e.actor_id == actor.map(|a| a.to_string())
                && (e.ip.is_some() || e.actor_id.is_none() || action.starts_with("membership"))
        })
    };
    assert!(has(&clinic, "auth.login", Some(w.doctor.user_id)), "sign-in");
    assert!(has(&lab, "auth.login_failed", Some(w.tech.user_id)), "failed sign-in");
    assert!(system.iter().any(|e| e.action == "auth.login_failed"
        && e.details.contains("email_sha256")
        && !e.details.contains("nobody")));
    assert!(has(&clinic, "auth.login_locked", Some(w.doctor2.user_id)), "lockout");
    let target = format!("file:{file}");
    for action in ["file.link_issued", "file.download"] {
        let e = clinic.iter().find(|e| e.action == action).unwrap_or_else(|| panic!("{action} missing"));
        assert_eq!(
            (e.actor_id.as_deref(), e.target.as_deref()),
            (Some(w.doctor.user_id.to_string().as_str()), Some(target.as_str()))
        );
        assert!(e.ip.as_deref().is_some_and(|ip| ip.starts_with("127.")), "{e:?}");
        // The lab sees the case: the download is in its chain too.
        assert!(lab.iter().any(|l| l.action == action));
    }
    assert!(has(&clinic, "auth.session_ended", Some(w.admin.user_id)));
    assert!(lab.iter().any(
        |e| e.action == "membership.revoked" && e.target == Some(format!("user:{}", w.lab_admin.user_id))
    ));
    // No session id appears (a digest does), no password, no e-mail.
    let sessions = [&w.doctor.session_id, &w.admin.session_id];
    for e in clinic.iter().chain(&lab).chain(&system) {
        let text = serde_json::to_string(e).unwrap();
        assert!(!sessions.iter().any(|s| text.contains(s.as_str())), "{text}");
        assert!(!text.contains("wrong password") && !text.contains("@t.test"), "{text}");
    }
    assert!(articula::audit::verify_db(&app.state.db, None).await.unwrap().is_ok());
}
