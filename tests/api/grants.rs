//! Per-case grants: given, shown, enforced by the case actor and every read, ended on time and
//! at once when revoked — also on live sockets.

use std::time::{Duration, Instant};

use articula_protocol::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::{both_backends, both_backends_with};

both_backends!(
    a_grant_opens_a_case_to_a_colleague_and_revoking_it_closes_it_at_once,
    a_grant_ends_on_time_on_live_sockets_and_in_every_read,
    grants_refuse_what_the_giver_may_not_give,
    support_access_is_read_only_visible_to_members_and_audited,
    grantable_lists_the_clinic_and_lab_people_to_those_who_manage_grants,
    a_label_kept_after_the_name_warning_is_audited_without_the_label,
);

both_backends_with!(with_label_names; the_label_name_list_is_served_to_signed_in_users);

fn with_label_names(s: &mut articula::config::Settings) {
    let path = s.data_dir.join("names.txt");
    std::fs::write(&path, "# common names\nMaría\n  lopez \n\nmaria\nAna  Belén\n").unwrap();
    s.label_name_list = Some(path);
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

async fn grantable_lists_the_clinic_and_lab_people_to_those_who_manage_grants(app: TestApp) {
    let w = app.world().await;
    let vendor = app.org("Vendor Support", OrgKind::Clinic).await;
    let support = app.member("help@vendor.test", vendor, Role::Auditor, "clinic").await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let path = format!("/api/v1/cases/{case}/grantable");
    let people = app.get_json(&path, &w.doctor).await;
    let ids: Vec<&str> = people.as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap()).collect();
    for who in [&w.doctor2, &w.admin, &w.owner, &w.tech, &w.lab_admin] {
        assert!(ids.contains(&who.user_id.to_string().as_str()), "{} missing: {people}", who.email);
    }
    // Not the caller, not other organisations, not the support account (it is named by e-mail).
    for who in [&w.doctor, &w.foreign_doctor, &w.foreign_tech, &support] {
        assert!(!ids.contains(&who.user_id.to_string().as_str()), "{} listed: {people}", who.email);
    }
    let tech =
        people.as_array().unwrap().iter().find(|p| p["user_id"] == w.tech.user_id.to_string()).unwrap();
    assert_eq!(tech["role"], "lab_tech");
    assert_eq!(tech["org_id"], w.lab.to_string());
    assert_eq!(tech["org_name"], "Precise Lab");
    let keys: Vec<&String> = tech.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "org_id", "org_name", "role", "user_id"], "ids, names, roles, orgs only");
    // An owner of the clinic manages grants without seeing the case; the case's doctor is not
    // offered to them (they hold every capability already).
    let by_owner = app.get_json(&path, &w.owner).await;
    assert!(!by_owner.as_array().unwrap().iter().any(|p| p["user_id"] == w.doctor.user_id.to_string()));
    // Members who do not manage grants are refused; outsiders do not learn the case exists.
    assert_eq!(app.get(&path, &w.tech).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, &w.admin).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, &w.foreign_doctor).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&path, &w.doctor2).await.status(), StatusCode::NOT_FOUND);
    // A holder of `manage` may list them too.
    let r = put_grant(&app, &w.doctor, case, w.doctor2.user_id, json!({"capabilities": ["manage"]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.get(&path, &w.doctor2).await.status(), StatusCode::OK);
    // The support account, by e-mail: owners only.
    let found = app.get_json(&format!("{path}?email=Help@Vendor.test"), &w.owner).await;
    assert_eq!(
        found,
        json!([{"user_id": support.user_id.to_string(), "name": "help@vendor.test",
        "role": null, "org_id": null, "org_name": null}])
    );
    assert_eq!(app.get_json(&format!("{path}?email=nobody@vendor.test"), &w.owner).await, json!([]));
    let r = app.get(&format!("{path}?email=help@vendor.test"), &w.doctor).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

async fn audit_count(app: &TestApp, org: OrgId, case: CaseId) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_entries WHERE org_id = '{org}' AND action = 'case.label_warning' AND case_id = '{case}'"
    ))
    .await
}

/// Waits until the audit actor has chained `n` label warnings of the case.
async fn wait_audited(app: &TestApp, org: OrgId, case: CaseId, n: i64) {
    let deadline = Instant::now() + WAIT;
    while audit_count(app, org, case).await < n {
        assert!(Instant::now() < deadline, "the label warning was not audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_label_kept_after_the_name_warning_is_audited_without_the_label(app: TestApp) {
    let w = app.world().await;
    let res = app
        .post(
            "/api/v1/cases",
            &w.doctor,
            json!({"label": "Maria Lopez crown", "lab_id": w.lab, "label_warning": "shown_and_kept"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let case: CaseId = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    wait_audited(&app, w.clinic, case, 1).await;
    let row = app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_entries WHERE action = 'case.label_warning' AND case_id = '{case}'
               AND actor_id = '{}' AND details LIKE '%shown_and_kept%' AND details LIKE '%create%'",
            w.doctor.user_id
        ))
        .await;
    assert_eq!(row, 1);
    // A label changed after the warning, too; a change without it is not a warning.
    let r = app
        .patch(
            &format!("/api/v1/cases/{case}"),
            &w.doctor,
            json!({"label": "Maria Lopez bridge", "label_warning": "shown_and_kept"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    wait_audited(&app, w.clinic, case, 2).await;
    let r = app.patch(&format!("/api/v1/cases/{case}"), &w.doctor, json!({"label": "MR-0042 bridge"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let plain = app.case(&w.doctor, "Crown 11 A2", None).await;
    // Everything after has been chained once a later entry is: poll for the next case event.
    let deadline = Instant::now() + WAIT;
    while app.count(&format!("SELECT COUNT(*) FROM audit_entries WHERE case_id = '{plain}'")).await == 0 {
        assert!(Instant::now() < deadline, "the case creation was not audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(audit_count(&app, w.clinic, case).await, 2);
    assert_eq!(audit_count(&app, w.clinic, plain).await, 0);
    // No label text in the audit.
    let leaks = app
        .count("SELECT COUNT(*) FROM audit_entries WHERE details LIKE '%Maria%' OR details LIKE '%Lopez%' OR target LIKE '%Maria%'")
        .await;
    assert_eq!(leaks, 0);
    // An unknown value is refused and creates nothing.
    let before = app.count("SELECT COUNT(*) FROM cases").await;
    let r =
        app.post("/api/v1/cases", &w.doctor, json!({"label": "Ana Ruiz", "label_warning": "ignored"})).await;
    assert_eq!(r.status().as_u16() / 100, 4, "{}", r.status());
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, before);
}

async fn the_label_name_list_is_served_to_signed_in_users(app: TestApp) {
    let w = app.world().await;
    let names = app.get_json("/api/v1/label-names", &w.doctor).await;
    assert_eq!(names, json!({"names": ["ana belén", "lopez", "maria", "maría"]}));
    let anonymous = app.http.get(app.path("/api/v1/label-names")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
