//! The cases API and DESIGN §2's visibility table, enforced in the SQL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    participants_have_names,
    creating_twice_with_one_id_makes_one_case,
    every_role_sees_exactly_its_cases,
    only_doctors_open_cases,
    at_risk_comes_with_its_figures,
    metadata_changes_follow_roles,
    status_changes_follow_the_workflow,
    list_filters_and_search,
    the_case_says_what_the_caller_may_do,
);

/// The case view carries what the caller may do now, from the server's policy (clients offer
/// exactly that), and it follows the status and grants.
async fn the_case_says_what_the_caller_may_do(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let allowed = |v: Value| v["allowed"].clone();
    let d = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.doctor).await);
    assert_eq!(d["side"], "clinic");
    assert_eq!(
        (d["chat"].clone(), d["prescribe"].clone(), d["approve"].clone(), d["propose"].clone()),
        (json!(true), json!(true), json!(true), json!(false))
    );
    assert_eq!(d["transitions"], json!(["on_hold", "cancelled"]));
    assert_eq!((d["route"].clone(), d["manage"].clone()), (json!(false), json!(true)));
    let t = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.tech).await);
    assert_eq!(t["side"], "lab");
    assert_eq!(
        (t["prescribe"].clone(), t["approve"].clone(), t["propose"].clone()),
        (json!(false), json!(false), json!(true))
    );
    assert_eq!(t["transitions"], json!(["received", "on_hold"]));
    let a = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.admin).await);
    assert_eq!((a["route"].clone(), a["prescribe"].clone()), (json!(true), json!(false)));
    // The lab receives it: the lists follow.
    let res = app.post(&format!("/api/v1/cases/{case}/status"), &w.tech, json!({"status": "received"})).await;
    assert_eq!(res.status(), 200);
    let t = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.tech).await);
    assert_eq!(t["transitions"], json!(["in_design", "in_production", "on_hold"]));
    let a = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.admin).await);
    assert_eq!(a["route"], json!(false), "a received case can no longer be re-routed");
    // A colleague with a chat grant may chat and nothing else.
    let res = app
        .http
        .put(app.path(&format!("/api/v1/cases/{case}/grants/{}", w.doctor2.user_id)))
        .bearer_auth(&w.doctor.access)
        .json(&json!({"capabilities": ["chat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let g = allowed(app.get_json(&format!("/api/v1/cases/{case}"), &w.doctor2).await);
    assert_eq!(g["side"], Value::Null);
    assert_eq!(
        (g["chat"].clone(), g["upload"].clone(), g["prescribe"].clone()),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(g["transitions"], json!([]));
}

fn labels(v: &Value) -> Vec<String> {
    let mut l: Vec<String> =
        v.as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap().to_owned()).collect();
    l.sort();
    l
}

async fn every_role_sees_exactly_its_cases(app: TestApp) {
    let w = app.world().await;
    let a = app.submitted_case(&w.doctor, "A submitted to lab", w.lab).await;
    let b = app.case(&w.doctor, "B draft routed", Some(w.lab)).await;
    let c = app.case(&w.doctor2, "C colleague draft", None).await;
    let d = app.submitted_case(&w.doctor2, "D colleague submitted", w.lab).await;
    let f = app.submitted_case(&w.foreign_doctor, "F foreign", w.other_lab).await;

    let table: Vec<(&Session, Vec<&str>)> = vec![
        (&w.doctor, vec!["A submitted to lab", "B draft routed"]),
        (&w.doctor2, vec!["C colleague draft", "D colleague submitted"]),
        (
            &w.admin,
            vec!["A submitted to lab", "B draft routed", "C colleague draft", "D colleague submitted"],
        ),
        (&w.tech, vec!["A submitted to lab", "D colleague submitted"]),
        (&w.lab_admin, vec!["A submitted to lab", "D colleague submitted"]),
        (&w.owner, vec![]),
        (&w.auditor, vec![]),
        (&w.foreign_doctor, vec!["F foreign"]),
        (&w.foreign_admin, vec!["F foreign"]),
        (&w.foreign_tech, vec!["F foreign"]),
    ];
    let all = [
        (a, "A submitted to lab"),
        (b, "B draft routed"),
        (c, "C colleague draft"),
        (d, "D colleague submitted"),
        (f, "F foreign"),
    ];
    for (who, want) in table {
        assert_eq!(labels(&app.get_json("/api/v1/cases", who).await), want, "list of {}", who.email);
        for (id, label) in all {
            let visible = want.contains(&label);
            for path in ["", "/events", "/messages", "/rx", "/rx/history", "/approvals"] {
                let res = app.get(&format!("/api/v1/cases/{id}{path}"), who).await;
                let want_status = if visible { StatusCode::OK } else { StatusCode::NOT_FOUND };
                assert_eq!(res.status(), want_status, "{} GET {label}{path}", who.email);
            }
        }
    }
    // Another organisation's case answers exactly like a missing one.
    let missing = app.get(&format!("/api/v1/cases/{}", articula_protocol::CaseId::new()), &w.doctor).await;
    let foreign = app.get(&format!("/api/v1/cases/{f}"), &w.doctor).await;
    assert_eq!(missing.status(), foreign.status());
    assert_eq!(missing.text().await.unwrap(), foreign.text().await.unwrap());
    let malformed = app.get("/api/v1/cases/not-a-uuid", &w.doctor).await;
    assert_eq!(malformed.status(), StatusCode::NOT_FOUND);
}

async fn only_doctors_open_cases(app: TestApp) {
    let w = app.world().await;
    for who in [&w.admin, &w.tech, &w.owner, &w.auditor] {
        let res = app.post("/api/v1/cases", who, json!({"label": "x"})).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{}", who.email);
    }
    let res =
        app.post("/api/v1/cases", &w.doctor, json!({"label": "Crown 11", "due_date": "2026-12-24"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "draft");
    assert_eq!(v["due_date"], "2026-12-24");
    assert_eq!(v["doctor_id"], json!(w.doctor.user_id));
    assert_eq!(v["last_seq"], 1);
    // Bad values change nothing.
    let before = app.count("SELECT COUNT(*) FROM cases").await;
    for body in [
        json!({"label": ""}),
        json!({"label": "x".repeat(201)}),
        json!({"label": "x", "due_date": "2026-13-45"}),
        json!({"label": "x", "lab_id": w.clinic}),
        json!({"label": 5}),
        json!({"label": "x", "patient_name": "Jane"}),
    ] {
        let res = app.post("/api/v1/cases", &w.doctor, body.clone()).await;
        assert!(res.status().is_client_error(), "{body}");
        assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, before);
}

/// The at-risk flag travels with the figures of its rule: the days the status still needs and the
/// days left before the due date (negative once overdue), in the REST view.
async fn at_risk_comes_with_its_figures(app: TestApp) {
    let w = app.world().await;
    let today = time::OffsetDateTime::now_utc().date();
    let day = |n: i64| (today + time::Duration::days(n)).to_string();
    for (due, risk, left) in [(day(1), true, 1), (day(30), false, 30), (day(-2), true, -2)] {
        let res = app.post("/api/v1/cases", &w.doctor, json!({"label": "Inlay 26", "due_date": due})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.unwrap();
        // A draft still needs a week.
        assert_eq!(
            (v["at_risk"].as_bool(), v["days_needed"].as_i64(), v["days_left"].as_i64()),
            (Some(risk), Some(7), Some(left)),
            "{due}"
        );
    }
    let res = app.post("/api/v1/cases", &w.doctor, json!({"label": "Onlay 37"})).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!((v["at_risk"].as_bool(), v["days_left"].is_null()), (Some(false), true));
}

async fn metadata_changes_follow_roles(app: TestApp) {
    let w = app.world().await;
    let id = app.case(&w.doctor, "Bridge", None).await;
    let path = format!("/api/v1/cases/{id}");

    let res = app.patch(&path, &w.doctor, json!({"label": "Bridge 34-36", "due_date": "2027-01-10"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!((v["label"].as_str(), v["due_date"].as_str()), (Some("Bridge 34-36"), Some("2027-01-10")));

    // Lab routing: the doctor chooses for their own draft, the clinic admin routes any case until
    // the lab has received it; nobody else.
    let res = app.patch(&path, &w.doctor, json!({"lab_id": w.other_lab})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.patch(&path, &w.admin, json!({"lab_id": w.lab})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["lab_id"], json!(w.lab));
    // Clearing the due date with null.
    let res = app.patch(&path, &w.admin, json!({"due_date": null})).await;
    assert!(res.json::<Value>().await.unwrap()["due_date"].is_null());

    // Others: the lab cannot see a draft; foreign users cannot either: 404, nothing changes.
    for who in [&w.tech, &w.foreign_admin, &w.owner] {
        let res = app.patch(&path, who, json!({"label": "hacked"})).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{}", who.email);
    }
    let res = app.patch(&path, &w.doctor2, json!({"label": "hacked"})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let v = app.get_json(&path, &w.doctor).await;
    assert_eq!(v["label"], "Bridge 34-36");
    // Every change is an event of the case's log, in order.
    let events = app.get_json(&format!("{path}/events"), &w.doctor).await;
    let kinds: Vec<_> =
        events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["case_created", "case_updated", "case_updated", "case_updated", "case_updated"]);
    let seqs: Vec<_> =
        events["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // Once submitted, only the clinic admin re-routes (until the lab received it).
    app.post(&format!("{path}/status"), &w.doctor, json!({"status": "submitted"})).await;
    let res = app.patch(&path, &w.doctor, json!({"lab_id": w.other_lab})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.patch(&path, &w.admin, json!({"lab_id": w.other_lab})).await;
    assert_eq!(res.status(), StatusCode::OK);
    app.post(&format!("{path}/status"), &w.foreign_tech, json!({"status": "received"})).await;
    let res = app.patch(&path, &w.admin, json!({"lab_id": w.lab})).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
}

async fn status_changes_follow_the_workflow(app: TestApp) {
    let w = app.world().await;
    let id = app.case(&w.doctor, "Crown", None).await;
    let status = |s: &str| json!({"status": s});
    let path = format!("/api/v1/cases/{id}/status");
    // Submitting needs a lab.
    let res = app.post(&path, &w.doctor, status("submitted")).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_transition");
    app.patch(&format!("/api/v1/cases/{id}"), &w.admin, json!({"lab_id": w.lab})).await;
    assert_eq!(app.post(&path, &w.doctor, status("submitted")).await.status(), StatusCode::OK);
    // The clinic cannot move production; the lab can.
    assert_eq!(app.post(&path, &w.doctor, status("received")).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.post(&path, &w.tech, status("received")).await.status(), StatusCode::OK);
    assert_eq!(app.post(&path, &w.tech, status("in_production")).await.status(), StatusCode::OK);
    assert_eq!(app.post(&path, &w.tech, status("shipped")).await.status(), StatusCode::OK);
    assert_eq!(app.post(&path, &w.tech, status("delivered")).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.post(&path, &w.admin, status("delivered")).await.status(), StatusCode::OK);
    let res = app.post(&path, &w.doctor, status("approved")).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = app.post(&path, &w.doctor, json!({"status": "teleported"})).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v = app.get_json(&format!("/api/v1/cases/{id}"), &w.admin).await;
    assert_eq!(v["status"], "delivered");
}

async fn list_filters_and_search(app: TestApp) {
    let w = app.world().await;
    app.case(&w.doctor, "Crown 11", None).await;
    app.submitted_case(&w.doctor, "Bridge 34", w.lab).await;
    app.submitted_case(&w.doctor2, "Crown 21 (50% done)", w.lab).await;
    let l = |p: &str| format!("/api/v1/cases{p}");
    assert_eq!(labels(&app.get_json(&l("?q=crown"), &w.admin).await), ["Crown 11", "Crown 21 (50% done)"]);
    assert_eq!(labels(&app.get_json(&l("?q=50%25"), &w.admin).await), ["Crown 21 (50% done)"]);
    assert_eq!(
        labels(&app.get_json(&l("?status=submitted"), &w.admin).await),
        ["Bridge 34", "Crown 21 (50% done)"]
    );
    assert_eq!(
        labels(&app.get_json(&l(&format!("?doctor_id={}", w.doctor2.user_id)), &w.admin).await),
        ["Crown 21 (50% done)"]
    );
    assert_eq!(
        labels(&app.get_json(&l(&format!("?lab_id={}", w.lab)), &w.tech).await),
        ["Bridge 34", "Crown 21 (50% done)"]
    );
    // A filter never widens visibility.
    assert_eq!(
        labels(&app.get_json(&l(&format!("?doctor_id={}", w.doctor2.user_id)), &w.doctor).await),
        Vec::<String>::new()
    );
    let res = app.get(&l("?status=nope"), &w.admin).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app.get(&l("?colour=red"), &w.admin).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn participants_have_names(app: TestApp) {
    let w = app.world().await;
    let draft = app.case(&w.doctor, "Draft", Some(w.lab)).await;
    let names = |v: Value| {
        let mut n: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["side"].as_str().unwrap().to_owned()))
            .collect();
        n.sort();
        n
    };
    let v = app.get_json(&format!("/api/v1/cases/{draft}/participants"), &w.doctor).await;
    assert_eq!(
        names(v),
        [("admin@t.test".to_owned(), "clinic".to_owned()), ("doctor@t.test".to_owned(), "clinic".to_owned())]
    );
    let submitted = app.submitted_case(&w.doctor, "Sent", w.lab).await;
    let v = app.get_json(&format!("/api/v1/cases/{submitted}/participants"), &w.tech).await;
    let n = names(v);
    assert!(
        n.contains(&("tech@t.test".to_owned(), "lab".to_owned()))
            && n.contains(&("labadmin@t.test".to_owned(), "lab".to_owned()))
    );
    assert!(
        !n.iter()
            .any(|(name, _)| name == "doctor2@t.test" || name == "owner@t.test" || name.starts_with('f'))
    );
    assert_eq!(
        app.get(&format!("/api/v1/cases/{submitted}/participants"), &w.foreign_tech).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn creating_twice_with_one_id_makes_one_case(app: TestApp) {
    let w = app.world().await;
    let id = articula_protocol::CaseId::new();
    let body = json!({"id": id, "label": "Crown 21"});
    assert_eq!(app.post("/api/v1/cases", &w.doctor, body.clone()).await.status(), StatusCode::CREATED);
    let res = app.post("/api/v1/cases", &w.doctor, body.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["id"], json!(id));
    assert_eq!(app.post("/api/v1/cases", &w.doctor2, body).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 1);
}
