//! Per-case grants: given, shown, enforced by the case actor and every read, ended on time and
//! at once when revoked — also on live sockets.

use std::time::{Duration, Instant};

use articula_protocol::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_grant_opens_a_case_to_a_colleague_and_revoking_it_closes_it_at_once,
    a_grant_ends_on_time_on_live_sockets_and_in_every_read,
    grants_refuse_what_the_giver_may_not_give,
    support_access_is_read_only_visible_to_members_and_audited,
);

fn post(case_id: CaseId, text: &str) -> ClientBody {
    ClientBody::PostMessage(PostMessage { case_id, text: text.into(), attachments: vec![], reply_to: None })
}

async fn put_grant(app: &TestApp, by: &Session, case: CaseId, to: UserId, body: Value) -> reqwest::Response {
    app.http
        .put(app.path(&format!("/api/v1/cases/{case}/grants/{to}")))
        .bearer_auth(&by.access)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete_grant(app: &TestApp, by: &Session, case: CaseId, to: UserId) -> reqwest::Response {
    app.http
        .delete(app.path(&format!("/api/v1/cases/{case}/grants/{to}")))
        .bearer_auth(&by.access)
        .send()
        .await
        .unwrap()
}

async fn a_grant_opens_a_case_to_a_colleague_and_revoking_it_closes_it_at_once(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &w.doctor2).await.status(), 404);
    let res =
        put_grant(&app, &w.doctor, case, w.doctor2.user_id, json!({"capabilities": ["chat", "upload"]}))
            .await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(
        list[0]["capabilities"],
        json!(["view", "chat", "upload"]),
        "view comes with any grant: {list}"
    );
    // An upload started under the grant…
    let data = crate::files::stl(2000);
    let res = app.tus_create(&w.doctor2, case, "scan.stl", Some("scan"), data.len() as u64).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let half = data.len() / 2;
    assert_eq!(app.tus_patch(&w.doctor2, &location, 0, data[..half].to_vec()).await.status(), 204);
    // Members see who holds a grant.
    let seen = app.get_json(&format!("/api/v1/cases/{case}/grants"), &w.tech).await;
    assert_eq!(seen[0]["user_id"], w.doctor2.user_id.to_string());
    // The colleague reads and chats, but does not prescribe.
    assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &w.doctor2).await.status(), 200);
    let mut colleague = app.ws(&w.doctor2, Codec::Json).await;
    let head = colleague.subscribe(case, 0).await;
    colleague.post(case, "covering for Ana today").await;
    let rx = ClientBody::EditRx(EditRx {
        case_id: case,
        changes: vec![RxChange { field: "notes".into(), base_version: 0, value: Some("x".into()) }],
    });
    assert_eq!(colleague.call(rx).await.unwrap_err().code, ErrorCode::Forbidden);
    // Revoked: the next request is refused, the live socket loses the case at that event.
    assert_eq!(delete_grant(&app, &w.doctor, case, w.doctor2.user_id).await.status(), 204);
    let f = colleague.wait_for(|f| matches!(f, ServerBody::Resync(r) if r.case_id == Some(case))).await;
    assert!(matches!(&f, ServerBody::Resync(r) if r.reason == "access_changed"), "{f:?}");
    assert_eq!(colleague.call(post(case, "still?")).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &w.doctor2).await.status(), 404);
    // …stops with it.
    let res = app.tus_patch(&w.doctor2, &location, half as u64, data[half..].to_vec()).await;
    assert_eq!(res.status(), 404);
    let events = app.get_json(&format!("/api/v1/cases/{case}/events?after={head}"), &w.doctor).await;
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.ends_with(&["message_posted", "grant_revoked"]), "{kinds:?}");
}

async fn a_grant_ends_on_time_on_live_sockets_and_in_every_read(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let until = articula_actors::clock::now_ms() + 2_000;
    let res = put_grant(
        &app,
        &w.doctor,
        case,
        w.doctor2.user_id,
        json!({"capabilities": ["view"], "until": until}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut colleague = app.ws(&w.doctor2, Codec::MsgPack).await;
    colleague.subscribe(case, 0).await;
    // No restart, no request: at `until` the case leaves the live socket.
    let f = colleague.wait_for(|f| matches!(f, ServerBody::Resync(r) if r.case_id == Some(case))).await;
    assert!(articula_actors::clock::now_ms() >= until, "lost the case early: {f:?}");
    assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &w.doctor2).await.status(), 404);
    assert_eq!(app.get_json(&format!("/api/v1/cases/{case}/grants"), &w.doctor).await, json!([]));
    let events = app.get_json(&format!("/api/v1/cases/{case}/events"), &w.doctor).await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "grant_expired"));
}

async fn grants_refuse_what_the_giver_may_not_give(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let before = app.count(&format!("SELECT last_seq FROM cases WHERE id = '{case}'")).await;
    let code = |res: reqwest::Response| async move {
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(json!({}));
        (status, v["error"].as_str().unwrap_or_default().to_owned())
    };
    let soon = articula_actors::clock::now_ms() + 60_000;
    // To someone of an unrelated organisation.
    let r =
        put_grant(&app, &w.doctor, case, w.foreign_doctor.user_id, json!({"capabilities": ["view"]})).await;
    assert_eq!(code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into()));
    // By someone who may not manage grants (a lab technician, a colleague who cannot see it).
    let r = put_grant(&app, &w.tech, case, w.lab_admin.user_id, json!({"capabilities": ["view"]})).await;
    assert_eq!(code(r).await.0, StatusCode::FORBIDDEN);
    let r = put_grant(&app, &w.doctor2, case, w.admin.user_id, json!({"capabilities": ["view"]})).await;
    assert_eq!(code(r).await.0, StatusCode::NOT_FOUND);
    // A holder of manage passes on only what they hold.
    let r = put_grant(&app, &w.doctor, case, w.doctor2.user_id, json!({"capabilities": ["view", "manage"]}))
        .await;
    assert_eq!(r.status(), 200);
    let r = put_grant(&app, &w.doctor2, case, w.owner.user_id, json!({"capabilities": ["edit_rx"]})).await;
    assert_eq!(code(r).await, (StatusCode::FORBIDDEN, "forbidden".into()));
    // Oneself, the past, an unknown capability, support by a non-owner.
    let r = put_grant(&app, &w.doctor2, case, w.doctor2.user_id, json!({"capabilities": ["view"]})).await;
    assert_eq!(code(r).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let r =
        put_grant(&app, &w.doctor, case, w.admin.user_id, json!({"capabilities": ["view"], "until": 1000}))
            .await;
    assert_eq!(code(r).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let r = put_grant(&app, &w.doctor, case, w.admin.user_id, json!({"capabilities": ["root"]})).await;
    assert_eq!(r.status().as_u16() / 100, 4);
    let r = put_grant(
        &app,
        &w.doctor,
        case,
        w.foreign_doctor.user_id,
        json!({"capabilities": ["view"], "support": true, "until": soon}),
    )
    .await;
    assert_eq!(code(r).await.0, StatusCode::FORBIDDEN);
    // Only the one good grant changed the case.
    let after = app.count(&format!("SELECT last_seq FROM cases WHERE id = '{case}'")).await;
    assert_eq!(after, before + 1);
}

async fn support_access_is_read_only_visible_to_members_and_audited(app: TestApp) {
    let w = app.world().await;
    let vendor = app.org("Articula Support", OrgKind::Clinic).await;
    let support = app.member("support@vendor.test", vendor, Role::Auditor, "clinic").await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.post(case, "the margin looks short").await;
    let until = articula_actors::clock::now_ms() + 3_600_000;
    // Read access only, with an end, given by an owner of the clinic.
    let r = put_grant(
        &app,
        &w.owner,
        case,
        support.user_id,
        json!({"capabilities": ["view", "chat"], "support": true, "until": until}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r =
        put_grant(&app, &w.owner, case, support.user_id, json!({"capabilities": ["view"], "support": true}))
            .await;
    assert_eq!(r.status(), 422);
    let r = put_grant(
        &app,
        &w.owner,
        case,
        support.user_id,
        json!({"capabilities": ["view"], "support": true, "until": until}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Members see it (the web client's banner reads this).
    let grants = app.get_json(&format!("/api/v1/cases/{case}/grants"), &w.tech).await;
    assert_eq!(grants[0]["support"], true);
    assert_eq!(grants[0]["until"], until);
    // The support account reads, and may not write.
    let messages = app.get_json(&format!("/api/v1/cases/{case}/messages"), &support).await;
    assert_eq!(messages[0]["text"], "the margin looks short");
    let mut ws = app.ws(&support, Codec::Json).await;
    assert_eq!(ws.call(post(case, "hello from support")).await.unwrap_err().code, ErrorCode::Forbidden);
    // Other cases stay closed.
    let other = app.submitted_case(&w.doctor, "Bridge", w.lab).await;
    assert_eq!(app.get(&format!("/api/v1/cases/{other}"), &support).await.status(), 404);
    // Audited: the grant and everything the account reads through signed links.
    let deadline = Instant::now() + WAIT;
    loop {
        let n = app
            .count(&format!(
                "SELECT COUNT(*) FROM audit_entries WHERE org_id = '{}' AND action = 'case.grant_given' AND target = 'user:{}'",
                w.clinic, support.user_id
            ))
            .await;
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the grant was not audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Revocable at once.
    assert_eq!(delete_grant(&app, &w.owner, case, support.user_id).await.status(), 204);
    assert_eq!(app.get(&format!("/api/v1/cases/{case}/messages"), &support).await.status(), 404);
}
