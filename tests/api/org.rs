//! The owner's organisation page (members, roles, sessions, revocation), incident notices and
//! `/.well-known/security.txt`.

use std::time::{Duration, Instant};

use articula_protocol::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audit::audit_caught_up;
use crate::helpers::*;
use crate::{both_backends, both_backends_with};

both_backends!(
    only_owners_see_and_manage_members,
    a_removed_role_ends_case_access_at_once_and_is_audited,
    an_organisation_keeps_at_least_one_owner,
    an_owner_ends_the_sessions_of_their_own_members_only,
    notices_reach_their_organisation_until_acknowledged,
    security_txt_is_absent_without_a_contact,
);
both_backends_with!(with_security_contact; security_txt_follows_rfc_9116);

fn with_security_contact(s: &mut articula::config::Settings) {
    s.security_contact = Some("mailto:security@example.org".into());
    s.security_policy_url = Some("https://example.org/security-policy".into());
    s.public_url = Some("https://articula.example.org".into());
}

async fn delete(app: &TestApp, s: &Session, path: &str) -> reqwest::Response {
    app.http.delete(app.path(path)).bearer_auth(&s.access).send().await.unwrap()
}

async fn error_code(res: reqwest::Response) -> (StatusCode, String, String) {
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    (status, v["error"].as_str().unwrap_or_default().into(), v["message"].as_str().unwrap_or_default().into())
}

/// An owner of another clinic.
async fn foreign_owner(app: &TestApp, w: &World) -> Session {
    app.member("fowner@t.test", w.other_clinic, Role::Owner, "clinic").await
}

async fn entries(app: &TestApp, org: OrgId) -> Vec<articula::audit::chain::Entry> {
    audit_caught_up(app).await;
    let f = articula::store::audit::AuditFilter { limit: 10_000, ..Default::default() };
    app.state.db.audit_entries(&org.to_string(), &f).await.unwrap()
}

async fn only_owners_see_and_manage_members(app: TestApp) {
    let w = app.world().await;
    let stranger = foreign_owner(&app, &w).await;
    let members = format!("/api/v1/orgs/{}/members", w.clinic);
    let list = app.get_json(&members, &w.owner).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5, "{list:?}");
    let doctor = list.iter().find(|m| m["email"] == "doctor@t.test").unwrap();
    assert_eq!(doctor["user_id"], w.doctor.user_id.to_string());
    assert_eq!(doctor["roles"], json!(["doctor"]));
    assert_eq!(doctor["status"], "active");
    assert_eq!(doctor["sessions"], 1);
    assert!(doctor["last_seen"].as_i64().is_some());
    assert!(!list.iter().any(|m| m["email"] == "tech@t.test"), "a lab member is not the clinic's");

    let remove = format!("/api/v1/orgs/{}/members/{}/roles/doctor", w.clinic, w.doctor2.user_id);
    let end = format!("/api/v1/orgs/{}/members/{}/sessions", w.clinic, w.doctor2.user_id);
    for who in [&w.doctor, &w.auditor, &w.admin] {
        let (status, code, _) = error_code(app.get(&members, who).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{}", who.email);
        assert_eq!(delete(&app, who, &remove).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(delete(&app, who, &end).await.status(), StatusCode::FORBIDDEN);
    }
    // Another organisation's owner (or a lab's member) finds no such organisation.
    for who in [&stranger, &w.tech] {
        let (status, code, _) = error_code(app.get(&members, who).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
        assert_eq!(delete(&app, who, &remove).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(delete(&app, who, &end).await.status(), StatusCode::NOT_FOUND);
    }
    // Nothing changed.
    assert_eq!(app.get("/api/v1/cases?limit=1", &w.doctor2).await.status(), StatusCode::OK);
    let again = app.get_json(&members, &w.owner).await;
    assert!(again.as_array().unwrap().iter().all(|m| m["roles"].as_array().unwrap().len() == 1));
    // A role or person that is not there.
    let missing = format!("/api/v1/orgs/{}/members/{}/roles/lab_tech", w.clinic, w.doctor2.user_id);
    assert_eq!(delete(&app, &w.owner, &missing).await.status(), StatusCode::NOT_FOUND);
    let unknown = format!("/api/v1/orgs/{}/members/{}/roles/dentist", w.clinic, w.doctor2.user_id);
    assert_eq!(delete(&app, &w.owner, &unknown).await.status(), StatusCode::NOT_FOUND);
}

async fn a_removed_role_ends_case_access_at_once_and_is_audited(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut socket = app.ws(&w.doctor, Codec::Json).await;
    let head = socket.subscribe(case, 0).await;
    let path = format!("/api/v1/orgs/{}/members/{}/roles/doctor", w.clinic, w.doctor.user_id);
    let started = Instant::now();
    assert_eq!(delete(&app, &w.owner, &path).await.status(), StatusCode::NO_CONTENT);
    let f = socket.wait_for(|f| matches!(f, ServerBody::Resync(r) if r.case_id == Some(case))).await;
    let lost_after = started.elapsed();
    // The last seq the socket was given: the head, or less when the role went while the
    // subscription's backlog was still on its way (it is never given anything after).
    assert!(
        matches!(&f, ServerBody::Resync(r) if r.reason == "access_changed" && r.last_seq.is_some_and(|s| s <= head)),
        "{f:?}"
    );
    assert!(lost_after < Duration::from_secs(1), "the socket lost the case after {lost_after:?}");
    // The next request is refused, on the socket and over REST.
    let post = ClientBody::PostMessage(PostMessage {
        case_id: case,
        text: "still here?".into(),
        attachments: vec![],
        reply_to: None,
        mentions: vec![],
    });
    assert_eq!(socket.call(post).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &w.doctor).await.status(), StatusCode::NOT_FOUND);
    // Gone already: nothing more to remove. The list shows a former member.
    assert_eq!(delete(&app, &w.owner, &path).await.status(), StatusCode::NOT_FOUND);
    let list = app.get_json(&format!("/api/v1/orgs/{}/members", w.clinic), &w.owner).await;
    let former = list.as_array().unwrap().iter().find(|m| m["email"] == "doctor@t.test").unwrap();
    assert_eq!(former["roles"], json!([]));
    // One entry, by the owner, about the doctor and the role.
    let clinic = entries(&app, w.clinic).await;
    let revoked: Vec<_> = clinic.iter().filter(|e| e.action == "membership.revoked").collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let e = revoked[0];
    assert_eq!(e.actor_id.as_deref(), Some(w.owner.user_id.to_string().as_str()));
    assert_eq!(e.target.as_deref(), Some(format!("user:{}", w.doctor.user_id).as_str()));
    assert!(e.details.contains("doctor") && e.ip.is_some(), "{e:?}");
}

async fn an_organisation_keeps_at_least_one_owner(app: TestApp) {
    let w = app.world().await;
    let own = |s: &Session| format!("/api/v1/orgs/{}/members/{}/roles/owner", w.clinic, s.user_id);
    let (status, code, message) = error_code(delete(&app, &w.owner, &own(&w.owner)).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(message, "an organisation keeps at least one owner");
    assert_eq!(app.get(&format!("/api/v1/orgs/{}/members", w.clinic), &w.owner).await.status(), 200);
    // With a second owner, either may step down, but not both.
    let now = articula_actors::clock::now_ms();
    app.state.db.add_membership(w.doctor2.user_id, w.clinic, Role::Owner, now).await.unwrap();
    assert_eq!(delete(&app, &w.owner, &own(&w.owner)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(delete(&app, &w.doctor2, &own(&w.doctor2)).await.status(), StatusCode::CONFLICT);
    // The former owner (no other role here) is a stranger to the clinic from now on.
    assert_eq!(app.get(&format!("/api/v1/orgs/{}/members", w.clinic), &w.owner).await.status(), 404);
}

async fn an_owner_ends_the_sessions_of_their_own_members_only(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut socket = app.ws(&w.doctor, Codec::Json).await;
    socket.subscribe(case, 0).await;
    let path = format!("/api/v1/orgs/{}/members/{}/sessions", w.clinic, w.doctor.user_id);
    let started = Instant::now();
    let res = delete(&app, &w.owner, &path).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(socket.closed().await, Some(4001));
    assert!(started.elapsed() < Duration::from_secs(1), "closed after {:?}", started.elapsed());
    assert_eq!(app.get("/api/v1/me", &w.doctor).await.status(), StatusCode::UNAUTHORIZED);
    let list = app.get_json(&format!("/api/v1/orgs/{}/members", w.clinic), &w.owner).await;
    let doctor = list.as_array().unwrap().iter().find(|m| m["email"] == "doctor@t.test").unwrap();
    assert_eq!((doctor["sessions"].clone(), doctor["roles"].clone()), (json!(0), json!(["doctor"])));
    // Someone who also belongs to an organisation this owner does not own: refused, unchanged.
    let now = articula_actors::clock::now_ms();
    app.state.db.add_membership(w.tech.user_id, w.clinic, Role::Auditor, now).await.unwrap();
    let tech = format!("/api/v1/orgs/{}/members/{}/sessions", w.clinic, w.tech.user_id);
    let (status, code, message) = error_code(delete(&app, &w.owner, &tech).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(message.contains("organisation you do not own"), "{message}");
    assert_eq!(app.get("/api/v1/me", &w.tech).await.status(), StatusCode::OK);
    // Someone who was never a member.
    let stranger = format!("/api/v1/orgs/{}/members/{}/sessions", w.clinic, w.foreign_doctor.user_id);
    assert_eq!(delete(&app, &w.owner, &stranger).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/me", &w.foreign_doctor).await.status(), StatusCode::OK);
    let clinic = entries(&app, w.clinic).await;
    let ended: Vec<_> = clinic.iter().filter(|e| e.action == "member.sessions_ended").collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].actor_id.as_deref(), Some(w.owner.user_id.to_string().as_str()));
    assert_eq!(ended[0].target.as_deref(), Some(format!("user:{}", w.doctor.user_id).as_str()));
}

async fn notices_reach_their_organisation_until_acknowledged(app: TestApp) {
    let w = app.world().await;
    let stranger = foreign_owner(&app, &w).await;
    let publish = format!("/api/v1/orgs/{}/notices", w.clinic);
    let body = json!({
        "title": "Lost laptop",
        "body": "What happened: a laptop was stolen.\nScope: sessions on it.\nWhat to do: sign in again.",
    });
    // Only the clinic's owners publish; texts follow the text rule.
    for (who, status) in [(&w.doctor, 403), (&w.auditor, 403), (&stranger, 404), (&w.tech, 404)] {
        assert_eq!(app.post(&publish, who, body.clone()).await.status(), status, "{}", who.email);
    }
    let bad = json!({"title": "Lost\u{0}laptop", "body": "x"});
    let (status, code, _) = error_code(app.post(&publish, &w.owner, bad).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let (status, code, _) =
        error_code(app.post(&publish, &w.owner, json!({"title": " ", "body": "x"})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert_eq!(app.count("SELECT COUNT(*) FROM notices").await, 0);
    let res = app.post(&publish, &w.owner, body.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let notice: Value = res.json().await.unwrap();
    let id = notice["id"].as_str().unwrap().to_owned();
    assert_eq!(notice["org_id"], w.clinic.to_string());
    assert_eq!(notice["published_by"], w.owner.user_id.to_string());

    // The clinic's members see it; the lab and the other clinic do not.
    for who in [&w.doctor, &w.auditor, &w.owner] {
        let mine = app.get_json("/api/v1/notices", who).await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{}", who.email);
        assert_eq!(mine[0]["title"], "Lost laptop");
        assert!(mine[0]["body"].as_str().unwrap().contains("What to do: sign in again."));
    }
    for who in [&w.tech, &w.foreign_doctor, &stranger] {
        assert_eq!(app.get_json("/api/v1/notices", who).await, json!([]), "{}", who.email);
        let ack = app.post(&format!("/api/v1/notices/{id}/ack"), who, json!({})).await;
        assert_eq!(ack.status(), StatusCode::NOT_FOUND);
    }
    // Acknowledged once, however often pressed.
    for _ in 0..2 {
        let ack = app.post(&format!("/api/v1/notices/{id}/ack"), &w.doctor, json!({})).await;
        assert_eq!(ack.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(app.get_json("/api/v1/notices", &w.doctor).await, json!([]));
    assert_eq!(app.get_json("/api/v1/notices", &w.auditor).await.as_array().unwrap().len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM notice_acks").await, 1);
    let stats = app.get_json(&publish, &w.owner).await;
    assert_eq!((stats[0]["id"].as_str(), stats[0]["acks"].as_i64()), (Some(id.as_str()), Some(1)));
    assert_eq!(stats[0]["members"], 5);
    assert_eq!(app.get(&publish, &w.doctor).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&publish, &stranger).await.status(), StatusCode::NOT_FOUND);

    // The operator's notice reaches everyone.
    let (ok, out, err) = {
        let file = app.dir.path().join("notice.txt");
        std::fs::write(&file, "What happened: maintenance.\nWhat to do: nothing.").unwrap();
        crate::security::cli(
            &app,
            &["notice", "publish", "--title", "Maintenance tonight", "--body-file", file.to_str().unwrap()],
            None,
        )
    };
    assert!(ok, "{err}");
    assert!(out.contains("every organisation"), "{out}");
    for who in [&w.tech, &w.foreign_doctor, &w.doctor] {
        let mine = app.get_json("/api/v1/notices", who).await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{}", who.email);
        assert_eq!(mine[0]["title"], "Maintenance tonight");
        assert_eq!(mine[0]["org_id"], Value::Null);
    }
    assert_eq!(app.get_json(&publish, &w.owner).await.as_array().unwrap().len(), 2);

    // Audited: the publication and the one acknowledgement, without their text.
    let clinic = entries(&app, w.clinic).await;
    let target = format!("notice:{id}");
    let published: Vec<_> = clinic.iter().filter(|e| e.action == "notice.published").collect();
    assert_eq!(published.len(), 2, "the owner's and the operator's");
    let acks: Vec<_> = clinic.iter().filter(|e| e.action == "notice.acknowledged").collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].target.as_deref(), Some(target.as_str()));
    assert_eq!(acks[0].actor_id.as_deref(), Some(w.doctor.user_id.to_string().as_str()));
    let lab = entries(&app, w.lab).await;
    assert!(lab.iter().any(|e| e.action == "notice.published"), "the operator's notice is in every chain");
    for e in clinic.iter().chain(&lab) {
        let text = serde_json::to_string(e).unwrap();
        assert!(!text.contains("laptop") && !text.contains("aintenance"), "{text}");
    }
}

async fn security_txt_is_absent_without_a_contact(app: TestApp) {
    let res = app.http.get(app.path("/.well-known/security.txt")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn security_txt_follows_rfc_9116(app: TestApp) {
    let res = app.http.get(app.path("/.well-known/security.txt")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_owned);
    assert_eq!(field("Contact").as_deref(), Some("mailto:security@example.org"), "{text}");
    assert_eq!(field("Policy").as_deref(), Some("https://example.org/security-policy"));
    assert_eq!(field("Preferred-Languages").as_deref(), Some("en, es"));
    assert_eq!(field("Canonical").as_deref(), Some("https://articula.example.org/.well-known/security.txt"));
    let expires = time::OffsetDateTime::parse(
        &field("Expires").unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = expires - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::days(364) && ahead <= time::Duration::days(365), "{ahead}");
}
