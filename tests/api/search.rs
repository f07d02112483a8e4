//! Full-text search (`GET /api/v1/search`): what is found (labels, chat, Rx, files, people),
//! what never is (deleted and replaced text, cases the caller does not see), and its bounds.

use articula::store::users::UserStatus;
use articula_actors::clock::now_ms;
use articula_protocol::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    words_of_labels_messages_rx_files_and_people_are_found,
    deleted_text_is_never_found_and_edited_text_only_by_its_new_words,
    nothing_of_a_case_is_found_by_who_may_not_see_it,
    search_inside_one_case_and_its_bounds,
);

/// A doctor of `clinic` with a display name (the harness names users by their e-mail).
async fn named_doctor(app: &TestApp, email: &str, name: &str, clinic: OrgId) -> Session {
    let hash = app.state.auth.passwords().hash(PASSWORD).await.unwrap();
    let id = app.state.db.create_user(email, name, Some(&hash), UserStatus::Active, now_ms()).await.unwrap();
    app.state.db.add_membership(id, clinic, Role::Doctor, now_ms()).await.unwrap();
    app.login(email, "clinic").await
}

async fn search(app: &TestApp, s: &Session, query: &str) -> Value {
    let res = app
        .http
        .get(app.path("/api/v1/search"))
        .query(&[("q", query)])
        .bearer_auth(&s.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "search {query:?}");
    res.json().await.unwrap()
}

async fn search_raw(app: &TestApp, s: &Session, params: &[(&str, &str)]) -> reqwest::Response {
    app.http.get(app.path("/api/v1/search")).query(params).bearer_auth(&s.access).send().await.unwrap()
}

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().unwrap()
}

/// The marked words of a result, cut out of its snippet by the UTF-16 ranges.
fn marked(hit: &Value) -> Vec<String> {
    let units: Vec<u16> = hit["snippet"].as_str().unwrap().encode_utf16().collect();
    hit["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            String::from_utf16(&units[r[0].as_u64().unwrap() as usize..r[1].as_u64().unwrap() as usize])
                .unwrap()
        })
        .collect()
}

async fn post_message(ws: &mut Ws, case: CaseId, text: &str) -> (u64, MessageId) {
    let seq = ws.post(case, text).await;
    let ev = ws.event(case, seq).await;
    match ev.data {
        EventData::MessagePosted { message_id, .. } => (seq, message_id),
        other => panic!("not a message: {other:?}"),
    }
}

async fn words_of_labels_messages_rx_files_and_people_are_found(app: TestApp) {
    let w = app.world().await;
    let ortiz = named_doctor(&app, "ortiz@t.test", "Dr. Elena Ortiz", w.clinic).await;
    let case = app.submitted_case(&ortiz, "Crown 11 upper", w.lab).await;
    let mut ws = app.ws(&ortiz, Codec::Json).await;
    ws.subscribe(case, 0).await;
    let (seq, message) = post_message(&mut ws, case, "Please check the margin on the distal side").await;
    let rx_seq = ws
        .call(ClientBody::EditRx(EditRx {
            case_id: case,
            changes: vec![RxChange {
                field: "notes".into(),
                base_version: 0,
                value: Some("Patient grinds at night, reinforce the cusp".into()),
            }],
        }))
        .await
        .unwrap()
        .unwrap();
    let file =
        app.upload(&ortiz, case, "Preparación_superior.stl", Some("scan"), &crate::files::stl(500), 1).await;

    // A word of a message, found by its start; the result leads to the message.
    let v = search(&app, &ortiz, "marg").await;
    let hits = results(&v);
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["kind"], "message");
    assert_eq!(hits[0]["case_id"], case.to_string());
    assert_eq!(hits[0]["case_label"], "Crown 11 upper");
    assert_eq!(hits[0]["message_id"], message.to_string());
    assert_eq!(hits[0]["seq"], seq);
    assert_eq!(hits[0]["snippet"], "Please check the margin on the distal side");
    assert_eq!(marked(&hits[0]), ["margin"]);
    assert_eq!(v["next_offset"], Value::Null);

    // The doctor's name: her case, for the tech of the lab too.
    for s in [&ortiz, &w.tech, &w.admin] {
        let v = search(&app, s, "Ortiz").await;
        let hits = results(&v);
        assert_eq!(hits.len(), 1, "{v}");
        assert_eq!(hits[0]["kind"], "person");
        assert_eq!(hits[0]["role"], "doctor");
        assert_eq!(hits[0]["case_id"], case.to_string());
        assert_eq!(marked(&hits[0]), ["Ortiz"]);
    }
    // The lab's and the clinic's names.
    let v = search(&app, &w.tech, "precise").await;
    assert!(
        results(&v)
            .iter()
            .any(|h| h["kind"] == "person" && h["role"] == "lab" && h["case_id"] == case.to_string()),
        "{v}"
    );
    let v = search(&app, &ortiz, "smile clinic").await;
    assert!(results(&v).iter().any(|h| h["role"] == "clinic" && h["case_id"] == case.to_string()), "{v}");

    // An Rx note, with its field.
    let v = search(&app, &w.tech, "grinds").await;
    let hits = results(&v);
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["kind"], "rx");
    assert_eq!(hits[0]["field"], "notes");
    assert_eq!(marked(&hits[0]), ["grinds"]);

    // A lab proposal's note.
    let mut lab = app.ws(&w.tech, Codec::Json).await;
    lab.call(ClientBody::ProposeRx(ProposeRx {
        case_id: case,
        changes: vec![RxChange {
            field: "notes".into(),
            base_version: rx_seq,
            value: Some("Reinforce the cusp".into()),
        }],
        note: Some("Bruxism: a thicker occlusal layer".into()),
    }))
    .await
    .unwrap();
    let v = search(&app, &ortiz, "bruxism").await;
    let hits = results(&v);
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["kind"], "rx");
    assert_eq!(hits[0]["field"], Value::Null);
    assert_eq!(hits[0]["snippet"], "Bruxism: a thicker occlusal layer");

    // A file name, split at punctuation, without regard to accents or case.
    for q in ["preparacion", "SUPERIOR", "Preparación stl"] {
        let v = search(&app, &w.tech, q).await;
        let hits = results(&v);
        assert_eq!(hits.len(), 1, "{q}: {v}");
        assert_eq!(hits[0]["kind"], "file");
        assert_eq!(hits[0]["file_id"], file.to_string());
    }

    // The label; every word must match.
    let v = search(&app, &w.tech, "crown upper").await;
    let hits = results(&v);
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["kind"], "label");
    assert_eq!(marked(&hits[0]), ["Crown", "upper"]);
    assert!(results(&search(&app, &w.tech, "crown lower").await).is_empty());

    // A renamed case is found by its new label only.
    let res = app.patch(&format!("/api/v1/cases/{case}"), &ortiz, json!({"label": "Onlay 26"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(results(&search(&app, &ortiz, "crown").await).is_empty());
    let v = search(&app, &ortiz, "onlay").await;
    assert_eq!(results(&v)[0]["case_label"], "Onlay 26", "{v}");
    // Results carry the case's current label.
    assert_eq!(results(&search(&app, &ortiz, "margin").await)[0]["case_label"], "Onlay 26");

    // Markup in a text comes back as plain text, marked by ranges only.
    post_message(&mut ws, case, "<img src=x onerror=alert(1)> zirconium").await;
    let v = search(&app, &ortiz, "zirconium").await;
    assert_eq!(results(&v)[0]["snippet"], "<img src=x onerror=alert(1)> zirconium");
}

async fn deleted_text_is_never_found_and_edited_text_only_by_its_new_words(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Bridge 34", w.lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    ws.subscribe(case, 0).await;
    let (_, gone) = post_message(&mut ws, case, "the shade looks greyish").await;
    let (_, edited) = post_message(&mut ws, case, "pontic too bulky").await;
    assert_eq!(results(&search(&app, &w.tech, "greyish").await).len(), 1);

    ws.call(ClientBody::DeleteMessage(MessageRef { case_id: case, message_id: gone })).await.unwrap();
    ws.call(ClientBody::EditMessage(EditMessage {
        case_id: case,
        message_id: edited,
        text: "pontic slimmer now".into(),
    }))
    .await
    .unwrap();
    for s in [&w.doctor, &w.tech, &w.admin] {
        assert!(results(&search(&app, s, "greyish").await).is_empty(), "a deleted message was found");
        assert!(
            results(&search(&app, s, "bulky").await).is_empty(),
            "an edited message was found by its old text"
        );
        let v = search(&app, s, "slimmer").await;
        let hits = results(&v);
        assert_eq!(hits.len(), 1, "{v}");
        assert_eq!(hits[0]["message_id"], edited.to_string());
        assert_eq!(hits[0]["snippet"], "pontic slimmer now");
    }
    // The index holds no deleted text at all (not only hidden from results).
    assert_eq!(
        app.count("SELECT COUNT(*) FROM search_docs WHERE body LIKE '%greyish%' OR body LIKE '%bulky%'")
            .await,
        0
    );
}

async fn nothing_of_a_case_is_found_by_who_may_not_see_it(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Veneer 21 quartzite", w.lab).await;
    let draft = app.case(&w.doctor, "Draft inlay quartzite", Some(w.lab)).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    ws.subscribe(case, 0).await;
    ws.subscribe(draft, 0).await;
    post_message(&mut ws, case, "quartzite margin ok").await;
    post_message(&mut ws, draft, "quartzite draft note").await;

    let nowhere = search(&app, &w.foreign_doctor, "xylophonic").await;
    assert_eq!(nowhere, json!({"results": [], "next_offset": null}));
    // Another organisation, a colleague without access, owners and auditors (no case content
    // by role): the same answer as for a word that exists nowhere — also by the doctor's name
    // and inside the case.
    for s in [&w.foreign_doctor, &w.foreign_admin, &w.foreign_tech, &w.doctor2, &w.owner, &w.auditor] {
        for q in ["quartzite", "margin", "doctor", "veneer", "smile", "precise"] {
            assert_eq!(search(&app, s, q).await, nowhere, "{} found {q}", s.email);
        }
        let res = search_raw(&app, s, &[("q", "quartzite"), ("case_id", &case.to_string())]).await;
        assert_eq!(res.json::<Value>().await.unwrap(), nowhere);
    }
    // The lab does not see the draft: only the submitted case.
    let v = search(&app, &w.tech, "quartzite").await;
    assert!(!results(&v).is_empty());
    assert!(results(&v).iter().all(|h| h["case_id"] == case.to_string()), "{v}");

    // A grant opens the case to the colleague; revoking it closes it at once.
    let grant = app
        .http
        .put(app.path(&format!("/api/v1/cases/{case}/grants/{}", w.doctor2.user_id)))
        .bearer_auth(&w.doctor.access)
        .json(&json!({"capabilities": ["view"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::OK);
    let v = search(&app, &w.doctor2, "quartzite").await;
    assert_eq!(results(&v).len(), 2, "label and message of the granted case: {v}");
    assert!(results(&v).iter().all(|h| h["case_id"] == case.to_string()));
    let revoke = app
        .http
        .delete(app.path(&format!("/api/v1/cases/{case}/grants/{}", w.doctor2.user_id)))
        .bearer_auth(&w.doctor.access)
        .send()
        .await
        .unwrap();
    assert!(revoke.status().is_success());
    assert_eq!(search(&app, &w.doctor2, "quartzite").await, nowhere);
    assert_eq!(search(&app, &w.doctor2, "margin").await, nowhere);
}

async fn search_inside_one_case_and_its_bounds(app: TestApp) {
    let w = app.world().await;
    let one = app.submitted_case(&w.doctor, "Crown 16", w.lab).await;
    let two = app.submitted_case(&w.doctor, "Crown 26", w.lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    ws.subscribe(one, 0).await;
    ws.subscribe(two, 0).await;
    for i in 0..30 {
        post_message(&mut ws, one, &format!("occlusion check {i}")).await;
    }
    post_message(&mut ws, two, "occlusion fine here").await;

    // Inside one case.
    let res = search_raw(&app, &w.tech, &[("q", "occlusion fine"), ("case_id", &one.to_string())]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(results(&res.json::<Value>().await.unwrap()).is_empty());
    let res = search_raw(&app, &w.tech, &[("q", "occlusion"), ("case_id", &two.to_string())]).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(results(&v).len(), 1);
    assert_eq!(results(&v)[0]["snippet"], "occlusion fine here");

    // Pages: 31 messages, the default page of 20, then the rest; never more than 50 a page.
    let v = search(&app, &w.tech, "occlusion").await;
    assert_eq!(results(&v).len(), 20);
    assert_eq!(v["next_offset"], 20);
    let res = search_raw(&app, &w.tech, &[("q", "occlusion"), ("offset", "20")]).await;
    let rest: Value = res.json().await.unwrap();
    assert_eq!(results(&rest).len(), 11);
    assert_eq!(rest["next_offset"], Value::Null);
    let mut seen: Vec<String> =
        results(&v).iter().chain(results(&rest)).map(|h| h["message_id"].to_string()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 31, "pages overlap");
    let res = search_raw(&app, &w.tech, &[("q", "occlusion"), ("limit", "50")]).await;
    assert_eq!(results(&res.json::<Value>().await.unwrap()).len(), 31);

    // Bad input: validation_failed (422, the code's status everywhere in this API), and
    // nothing is searched.
    let long = "a".repeat(201);
    let nine = "a b c d e f g h i";
    let bad: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("q", "")],
        vec![("q", "   ")],
        vec![("q", "!!! -- ¿?")],
        vec![("q", &long)],
        vec![("q", nine)],
        vec![("q", "crown"), ("limit", "0")],
        vec![("q", "crown"), ("limit", "51")],
        vec![("q", "crown"), ("offset", "-1")],
        vec![("q", "crown"), ("offset", "1001")],
        vec![("q", "crown"), ("limit", "ten")],
        vec![("q", "crown"), ("case_id", "not-a-uuid")],
        vec![("q", "crown"), ("sort", "new")],
    ];
    for params in bad {
        let res = search_raw(&app, &w.tech, &params).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{params:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "validation_failed", "{params:?}: {body}");
    }
    // FTS and tsquery syntax in a query is only words.
    for q in ["\"crown", "crown*", "crown OR NOT", "crown:* & !", "NEAR(crown", "'crown'"] {
        let v = search(&app, &w.tech, q).await;
        assert!(results(&v).iter().all(|h| h["kind"] == "label"), "{q}: {v}");
    }
    // Without a session: 401.
    let res = app.http.get(app.path("/api/v1/search?q=crown")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Rows written before the search migration, as a server of the previous version left them.
const OLD_ROWS: &[&str] = &[
    "INSERT INTO orgs (id, name, kind, created_at) VALUES ('00000000-0000-4000-8000-000000000001', 'Clínica Muñoz', 'clinic', 1)",
    "INSERT INTO users (id, email, name, status, created_at) VALUES ('00000000-0000-4000-8000-000000000002', 'old@t.test', 'Dr. Rosa Ibáñez', 'active', 1)",
    "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 'doctor', 1)",
    "INSERT INTO cases (id, clinic_id, doctor_id, label, status, created_at, last_activity, last_seq)
       VALUES ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', 'Inlay 36 legacy', 'draft', 1, 5, 4)",
    "INSERT INTO messages (id, case_id, seq, author_id, text, created_at) VALUES
       ('00000000-0000-4000-8000-000000000004', '00000000-0000-4000-8000-000000000003', 2, '00000000-0000-4000-8000-000000000002', 'the contact point is tight', 2),
       ('00000000-0000-4000-8000-000000000005', '00000000-0000-4000-8000-000000000003', 3, '00000000-0000-4000-8000-000000000002', 'withdrawn remark', 3)",
    "UPDATE messages SET deleted_at = 4 WHERE id = '00000000-0000-4000-8000-000000000005'",
    "INSERT INTO rx_fields (case_id, field, value, version, updated_by, updated_at) VALUES
       ('00000000-0000-4000-8000-000000000003', 'notes', 'onlay if the wall is thin', 4, '00000000-0000-4000-8000-000000000002', 4)",
];

#[actix_web::test]
async fn rows_older_than_the_index_are_found_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::migrate!("./migrations/sqlite").run_to(15, &pool).await.unwrap();
        for q in OLD_ROWS {
            sqlx::query(sqlx::AssertSqlSafe(*q)).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    rows_older_than_the_index_are_found(spawn_app_on(&url, |_| {}).await).await;
}

#[actix_web::test]
async fn rows_older_than_the_index_are_found_postgres() {
    let url = fresh_pg_db();
    {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::migrate!("./migrations/postgres").run_to(15, &pool).await.unwrap();
        for q in OLD_ROWS {
            sqlx::query(sqlx::AssertSqlSafe(*q)).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    rows_older_than_the_index_are_found(spawn_app_on(&url, |_| {}).await).await;
}

/// The migration filled the index: the label, a message, an Rx note, the doctor and the clinic
/// of a case written before it are found; the message deleted before it is not.
async fn rows_older_than_the_index_are_found(app: TestApp) {
    let doctor: UserId = "00000000-0000-4000-8000-000000000002".parse().unwrap();
    let find = |q: &'static str| {
        let db = app.state.db.clone();
        async move {
            let page =
                db.search(doctor, &articula::store::search::query_words(q), None, 20, 0).await.unwrap();
            page.results
                .iter()
                .map(|h| serde_json::to_value(h).unwrap()["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("legacy").await, ["label"]);
    assert_eq!(find("contact tight").await, ["message"]);
    assert_eq!(find("thin wall").await, ["rx"]);
    assert_eq!(find("ibanez").await, ["person"]);
    assert_eq!(find("munoz").await, ["person"]);
    assert!(find("withdrawn").await.is_empty(), "a message deleted before the migration is found");
}
