//! The realtime core through real WebSocket clients: chat in both codecs, durable-before-visible,
//! resume with `since`, exactly-once retries, Rx conflicts, approvals, the status board, slow
//! readers, supervised restarts, revocation and bad frames.

use std::time::{Duration, Instant};

use articula_actors::case::NewFile;
use articula_actors::{CaseCommand, Command};
use articula_protocol::*;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    two_users_chat_live_in_both_codecs,
    nothing_is_acked_or_seen_before_commit,
    resume_with_since_gives_exactly_the_missed_events,
    resume_from_the_database_when_memory_has_moved_on,
    a_retried_command_creates_nothing,
    rx_edits_on_stale_versions_are_rejected,
    approvals_are_voided_by_new_designs_and_rx_edits,
    the_board_moves_live,
    a_slow_reader_is_dropped_while_others_continue,
    a_panicking_case_restarts_and_loses_nothing,
    revoking_a_user_closes_their_socket,
    bad_frames_get_error_codes_and_change_nothing,
    the_socket_authenticates_by_header_frame_or_same_site_cookie,
    rerouting_removes_the_old_lab,
    presence_typing_and_read_receipts,
    a_declined_proposal_and_a_rejected_design_change_nothing_else,
    the_event_log_pages_by_seq,
);

/// SQLite only: commits never checkpoint the write-ahead log themselves (that would stall every
/// event waiting on the commit); a background task copies it into the database file, and starts
/// the log over once it is long, so that steady writing never grows it without bound.
#[actix_web::test]
async fn the_sqlite_log_is_checkpointed_in_the_background_and_stays_bounded() {
    // Restart the log past 64 frames (256 KiB).
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.sqlite_wal_restart_frames = 64;
        s.ws_command_burst = 1000;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let file_size = |name: &str| std::fs::metadata(app.dir.path().join(name)).map(|m| m.len()).unwrap_or(0);
    let before = file_size("articula.db");
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.subscribe(case, 0).await;
    let text = "x".repeat(10_000);
    // Steady writing, ~20 KB per message: the log must start over now and then (its file
    // shrinks) rather than hold everything.
    let (mut posts, mut last, mut shrank) = (0, 0, false);
    let deadline = Instant::now() + Duration::from_secs(15);
    while posts < 300 || !shrank {
        assert!(Instant::now() < deadline, "the log never started over: {last} bytes after {posts} messages");
        doctor.post(case, &text).await;
        posts += 1;
        let size = file_size("articula.db-wal");
        shrank |= size < last;
        last = size;
    }
    // Everything reaches the database file, though SQLite's own automatic checkpoint is off.
    let deadline = Instant::now() + Duration::from_secs(20);
    while file_size("articula.db") < before + 3_000_000 {
        assert!(Instant::now() < deadline, "the database file stayed at {} bytes", file_size("articula.db"));
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a file: no event to wait on
    }
}

fn text_of(e: &Event) -> &str {
    match &e.data {
        EventData::MessagePosted { text, .. } => text,
        _ => "",
    }
}

async fn messages_count(app: &TestApp, case: CaseId) -> i64 {
    app.count(&format!("SELECT COUNT(*) FROM messages WHERE case_id = '{case}'")).await
}

async fn two_users_chat_live_in_both_codecs(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    assert!(matches!(doctor.recv().await, Some(ServerBody::Welcome(wl)) if wl.user_id == w.doctor.user_id));
    assert!(matches!(tech.recv().await, Some(ServerBody::Welcome(_))));
    let head = doctor.subscribe(case, 0).await;
    assert_eq!(tech.subscribe(case, head).await, head);

    let seq = doctor.post(case, "Shade A2 please").await;
    assert_eq!(seq, head + 1);
    let e = tech.event(case, seq).await;
    assert_eq!((text_of(&e), e.actor), ("Shade A2 please", w.doctor.user_id));
    let seq2 = tech.post(case, "Confirmed — A2, lithium disilicate").await;
    assert_eq!(seq2, seq + 1);
    assert_eq!(text_of(&doctor.event(case, seq2).await), "Confirmed — A2, lithium disilicate");
    // The doctor also saw their own message, first.
    assert!(doctor.buffered.iter().any(|f| matches!(f, ServerBody::Event(e) if e.seq == seq)));
    // Edit and delete own messages only.
    let EventData::MessagePosted { message_id, .. } = e.data else { panic!("not a message") };
    let err = tech
        .call(ClientBody::EditMessage(EditMessage { case_id: case, message_id, text: "x".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    let s = doctor
        .call(ClientBody::EditMessage(EditMessage {
            case_id: case,
            message_id,
            text: "Shade A3 please".into(),
        }))
        .await
        .unwrap();
    assert!(matches!(tech.event(case, s.unwrap()).await.data, EventData::MessageEdited { .. }));
    let s = doctor.call(ClientBody::DeleteMessage(MessageRef { case_id: case, message_id })).await.unwrap();
    assert!(matches!(tech.event(case, s.unwrap()).await.data, EventData::MessageDeleted { .. }));
    let msgs = app.get_json(&format!("/api/v1/cases/{case}/messages"), &w.tech).await;
    let msgs = msgs.as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0]["text"].is_null() && msgs[0]["deleted_at"].is_i64());
    assert_eq!(msgs[1]["text"], "Confirmed — A2, lithium disilicate");
}

async fn nothing_is_acked_or_seen_before_commit(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let head = doctor.subscribe(case, 0).await;
    tech.subscribe(case, head).await;

    // Stop the database write path: another connection holds a write lock on the event log.
    let locker = Locker::lock(&app).await;
    let id = doctor.new_id();
    doctor.send_with_id(&id, post(case, "held back")).await;
    locker.wait_until_blocked(&app).await;
    // While the write cannot commit, neither the sender nor the other subscriber hears of it.
    let quiet = Duration::from_millis(700);
    assert!(tokio::time::timeout(quiet, tech.wait_for(|f| matches!(f, ServerBody::Event(_)))).await.is_err());
    assert!(!doctor.buffered.iter().any(|f| matches!(f, ServerBody::Ack(_) | ServerBody::Event(_))));
    assert!(tokio::time::timeout(Duration::from_millis(50), doctor.answer(&id)).await.is_err());
    assert_eq!(messages_count(&app, case).await, 0);
    locker.release().await;
    // Once committed, both arrive, and the event is in the log.
    let seq = doctor.answer(&id).await.unwrap().unwrap();
    assert_eq!(text_of(&tech.event(case, seq).await), "held back");
    assert_eq!(messages_count(&app, case).await, 1);
}

async fn resume_with_since_gives_exactly_the_missed_events(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let head = doctor.subscribe(case, 0).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    tech.subscribe(case, head).await;
    let first = doctor.post(case, "before the tunnel").await;
    tech.event(case, first).await;
    let last_seen = first;
    drop(tech); // the technician's phone loses the network

    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(doctor.post(case, &format!("missed {i}")).await);
    }
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    let head = tech.subscribe(case, last_seen).await;
    assert_eq!(head, *sent.last().unwrap());
    let live = doctor.post(case, "after reconnect").await;
    let got = tech.events_until(case, live).await;
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (last_seen + 1..=live).collect();
    assert_eq!(seqs, want, "exactly the missed events, in order, then live ones");
    assert_eq!(text_of(&got[0]), "missed 0");
    assert_eq!(text_of(got.last().unwrap()), "after reconnect");
}

async fn resume_from_the_database_when_memory_has_moved_on(app: TestApp) {
    // A tiny in-memory ring forces old resumes to the database.
    let app = spawn_app_with(app.backend, |s| s.resume_ring = 4).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.subscribe(case, 0).await;
    let mut last = 0;
    for i in 0..12 {
        last = doctor.post(case, &format!("m{i}")).await;
    }
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    assert_eq!(tech.subscribe(case, 1).await, last);
    let got = tech.events_until(case, last).await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), (2..=last).collect::<Vec<_>>());
    // Whole history from 0, too.
    let mut admin = app.ws(&w.admin, Codec::MsgPack).await;
    admin.subscribe(case, 0).await;
    let got = admin.events_until(case, last).await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>());
    assert!(matches!(got[0].data, EventData::CaseCreated { .. }));
    let metrics = app.http.get(app.path("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("articula_resumes_total{source=\"store\"}"), "{metrics}");
}

async fn a_retried_command_creates_nothing(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.subscribe(case, 0).await;
    let id = "retry-me-0001";
    let seq = doctor.call_with_id(id, post(case, "once")).await.unwrap();
    let again = doctor.call_with_id(id, post(case, "once")).await.unwrap();
    assert_eq!(seq, again);
    // After a reconnect too (the client never saw the ack and resends).
    drop(doctor);
    let mut doctor = app.ws(&w.doctor, Codec::MsgPack).await;
    assert_eq!(doctor.call_with_id(id, post(case, "once")).await.unwrap(), seq);
    // The same id from another user is another command.
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let other = tech.call_with_id(id, post(case, "mine")).await.unwrap();
    assert_ne!(other, seq);
    assert_eq!(messages_count(&app, case).await, 2);
    // Also after the case's actor restarted from the log.
    app.state.registry.inject_panic(case, articula_actors::case::PanicPoint::Now);
    let after = loop {
        match doctor.call_with_id(id, post(case, "once")).await {
            Ok(s) => break s,
            Err(e) if e.code == ErrorCode::Unavailable => continue,
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(after, seq);
    assert_eq!(messages_count(&app, case).await, 2);
}

fn edit(case_id: CaseId, field: &str, base_version: u64, value: Option<&str>) -> ClientBody {
    ClientBody::EditRx(EditRx {
        case_id,
        changes: vec![RxChange { field: field.into(), base_version, value: value.map(Into::into) }],
    })
}

async fn rx_edits_on_stale_versions_are_rejected(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut phone = app.ws(&w.doctor, Codec::Json).await;
    let mut desk = app.ws(&w.doctor, Codec::MsgPack).await;
    let v1 = phone.call(edit(case, "teeth.11.shade", 0, Some("A2"))).await.unwrap().unwrap();
    // The desk still shows the field as never set (version 0): its edit is stale.
    let err = desk.call(edit(case, "teeth.11.shade", 0, Some("A3"))).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RxConflict);
    let c = &err.details.as_ref().unwrap()["conflicts"][0];
    assert_eq!(
        (c["field"].as_str(), c["value"].as_str(), c["version"].as_u64()),
        (Some("teeth.11.shade"), Some("A2"), Some(v1))
    );
    // Re-applied on the current version, it goes through.
    let v2 = desk.call(edit(case, "teeth.11.shade", v1, Some("A3"))).await.unwrap().unwrap();
    // An edit touching a stale field changes none of its fields.
    let err = phone
        .call(ClientBody::EditRx(EditRx {
            case_id: case,
            changes: vec![
                RxChange {
                    field: "teeth.11.material".into(),
                    base_version: 0,
                    value: Some("zirconia".into()),
                },
                RxChange { field: "teeth.11.shade".into(), base_version: v1, value: Some("B1".into()) },
            ],
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RxConflict);
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.tech).await;
    assert_eq!(rx["rx_version"], v2);
    let fields = rx["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!((fields[0]["value"].as_str(), fields[0]["version"].as_u64()), (Some("A3"), Some(v2)));
    // Invalid values and roles.
    for (field, value, code) in [
        ("teeth.19.shade", "A2", ErrorCode::InvalidRx),
        ("teeth.11.shade", "Z9", ErrorCode::InvalidRx),
        ("teeth.11.colour", "red", ErrorCode::InvalidRx),
    ] {
        assert_eq!(phone.call(edit(case, field, 0, Some(value))).await.unwrap_err().code, code, "{field}");
    }
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    assert_eq!(
        tech.call(edit(case, "teeth.11.shade", v2, Some("A1"))).await.unwrap_err().code,
        ErrorCode::Forbidden
    );
    let mut admin = app.ws(&w.admin, Codec::Json).await;
    assert_eq!(
        admin.call(edit(case, "teeth.11.shade", v2, Some("A1"))).await.unwrap_err().code,
        ErrorCode::Forbidden
    );
    // The lab proposes; the doctor accepts, with the same version check.
    let p = tech
        .call(ClientBody::ProposeRx(ProposeRx {
            case_id: case,
            changes: vec![RxChange {
                field: "teeth.11.material".into(),
                base_version: 0,
                value: Some("zirconia".into()),
            }],
            note: Some("stronger".into()),
        }))
        .await
        .unwrap()
        .unwrap();
    let history = app.get_json(&format!("/api/v1/cases/{case}/rx/history"), &w.doctor).await;
    let proposal_id =
        history["events"].as_array().unwrap().iter().find(|e| e["seq"] == p).unwrap()["data"]["proposal_id"]
            .clone();
    let proposal_id: ProposalId = serde_json::from_value(proposal_id).unwrap();
    let seq = phone
        .call(ClientBody::DecideRxProposal(DecideRxProposal {
            case_id: case,
            proposal_id,
            accept: true,
            comment: None,
        }))
        .await
        .unwrap()
        .unwrap();
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.doctor).await;
    assert!(
        rx["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "teeth.11.material" && f["version"] == seq)
    );
    assert_eq!(rx["proposals"][0]["status"], "accepted");

    // A file of the case can be attached to the Rx with a caption; a file of no case cannot.
    let photo = add_design(&app, case, &w.doctor, &"d".repeat(64)).await;
    let field = format!("attachments.{photo}");
    let v = phone.call(edit(case, &field, 0, Some("shade reference, 11"))).await.unwrap().unwrap();
    let err = phone.call(edit(case, &format!("attachments.{}", FileId::new()), 0, Some("x"))).await;
    assert_eq!(err.unwrap_err().code, ErrorCode::InvalidRx);
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.tech).await;
    let f = rx["fields"].as_array().unwrap().iter().find(|f| f["field"] == field.as_str()).cloned();
    assert_eq!(
        f.map(|f| (f["value"].clone(), f["version"].clone())),
        Some((json!("shade reference, 11"), json!(v)))
    );
    // A file of another case cannot be attached, nor detached, nor proposed by the lab.
    let other = app.submitted_case(&w.doctor, "Bridge", w.lab).await;
    let foreign = add_design(&app, other, &w.doctor, &"e".repeat(64)).await;
    for value in [Some("x"), None] {
        let err = phone.call(edit(case, &format!("attachments.{foreign}"), 0, value)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRx);
    }
    let err = tech
        .call(ClientBody::ProposeRx(ProposeRx {
            case_id: case,
            changes: vec![RxChange {
                field: format!("attachments.{foreign}"),
                base_version: 0,
                value: Some("x".into()),
            }],
            note: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRx);
    // Detaching clears the field.
    phone.call(edit(case, &field, v, None)).await.unwrap();
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.tech).await;
    let f = rx["fields"].as_array().unwrap().iter().find(|f| f["field"] == field.as_str()).cloned();
    assert!(f.is_none_or(|f| f["value"].is_null()), "{rx}");
}

async fn add_design(app: &TestApp, case: CaseId, by: &Session, sha: &str) -> FileId {
    let file_id = FileId::new();
    let who = articula::http::cases::principal(&app.state, by.user_id).await.unwrap();
    app.state
        .registry
        .command(
            case,
            Command {
                who,
                client_id: None,
                body: CaseCommand::AddFile(NewFile {
                    file_id,
                    name: "crown_11.stl".into(),
                    size: 1000,
                    content_type: "model/stl".into(),
                    sha256: sha.into(),
                    kind: FileKind::Design,
                }),
            },
        )
        .await
        .unwrap();
    file_id
}

async fn approvals_are_voided_by_new_designs_and_rx_edits(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let mut doctor = app.ws(&w.doctor, Codec::MsgPack).await;
    tech.call(ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Received, reason: None }))
        .await
        .unwrap();
    let v1 = "a".repeat(64);
    add_design(&app, case, &w.tech, &v1).await;
    let request = |sha: &str| {
        ClientBody::RequestApproval(RequestApproval { case_id: case, file_sha256: sha.into(), comment: None })
    };
    assert_eq!(tech.call(request(&"f".repeat(64))).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(doctor.call(request(&v1)).await.unwrap_err().code, ErrorCode::Forbidden);
    tech.call(request(&v1)).await.unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(approvals[0]["status"], "pending");
    assert_eq!(
        app.get_json(&format!("/api/v1/cases/{case}"), &w.doctor).await["status"],
        "awaiting_approval"
    );
    let first: ApprovalId = serde_json::from_value(approvals[0]["id"].clone()).unwrap();

    // An Rx edit voids it; deciding a voided approval is refused.
    doctor.call(edit(case, "teeth.11.shade", 0, Some("A2"))).await.unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(approvals[0]["status"], "voided");
    let decide = |id, d| {
        ClientBody::DecideApproval(DecideApproval {
            case_id: case,
            approval_id: id,
            decision: d,
            comment: Some("ok".into()),
        })
    };
    assert_eq!(doctor.call(decide(first, Decision::Approve)).await.unwrap_err().code, ErrorCode::Conflict);

    // Requested again at the new Rx version, then voided by a new design file.
    tech.call(request(&v1)).await.unwrap();
    let v2 = "b".repeat(64);
    add_design(&app, case, &w.tech, &v2).await;
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(approvals[1]["status"], "voided");

    // The new design is approved; an approval names the exact file and Rx version.
    tech.call(request(&v2)).await.unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    let third: ApprovalId = serde_json::from_value(approvals[2]["id"].clone()).unwrap();
    assert_eq!(approvals[2]["file_sha256"], v2);
    let err = doctor
        .call(ClientBody::DecideApproval(DecideApproval {
            case_id: case,
            approval_id: third,
            decision: Decision::Reject,
            comment: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationFailed);
    let mut admin = app.ws(&w.admin, Codec::Json).await;
    assert_eq!(admin.call(decide(third, Decision::Approve)).await.unwrap_err().code, ErrorCode::Forbidden);
    doctor.call(decide(third, Decision::Approve)).await.unwrap();
    assert_eq!(app.get_json(&format!("/api/v1/cases/{case}"), &w.doctor).await["status"], "approved");
    assert_eq!(
        app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await[2]["status"],
        "approved"
    );
}

async fn the_board_moves_live(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let other = app.submitted_case(&w.doctor2, "Bridge", w.lab).await;
    let mut admin = app.ws(&w.admin, Codec::Json).await;
    admin.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap();
    let ServerBody::Board(snap) = admin.wait_for(|f| matches!(f, ServerBody::Board(b) if b.snapshot)).await
    else {
        unreachable!()
    };
    assert_eq!(snap.org_id, w.clinic);
    assert_eq!(snap.cases.len(), 2);
    let mut doctor_board = app.ws(&w.doctor, Codec::MsgPack).await;
    doctor_board.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap();
    let ServerBody::Board(mine) =
        doctor_board.wait_for(|f| matches!(f, ServerBody::Board(b) if b.snapshot)).await
    else {
        unreachable!()
    };
    assert_eq!(mine.cases.iter().map(|c| c.case_id).collect::<Vec<_>>(), [case]);

    let mut tech = app.ws(&w.tech, Codec::Json).await;
    tech.call(ClientBody::SetStatus(SetStatus {
        case_id: other,
        status: CaseStatus::Received,
        reason: None,
    }))
    .await
    .unwrap();
    tech.call(ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Received, reason: None }))
        .await
        .unwrap();
    let moved = admin
        .wait_for(|f| matches!(f, ServerBody::Board(b) if !b.snapshot && b.cases.iter().any(|c| c.case_id == case && c.status == CaseStatus::Received)))
        .await;
    let ServerBody::Board(b) = moved else { unreachable!() };
    assert_eq!(b.cases[0].label, "Crown");
    // The doctor's board only moves for their own case.
    let ServerBody::Board(b) =
        doctor_board.wait_for(|f| matches!(f, ServerBody::Board(b) if !b.snapshot)).await
    else {
        unreachable!()
    };
    assert!(b.cases.iter().all(|c| c.case_id == case));
    // The lab's board too; owners have none.
    let mut lab = app.ws(&w.lab_admin, Codec::Json).await;
    lab.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap();
    let ServerBody::Board(lb) = lab.wait_for(|f| matches!(f, ServerBody::Board(b) if b.snapshot)).await
    else {
        unreachable!()
    };
    assert_eq!(lb.org_id, w.lab);
    let mut owner = app.ws(&w.owner, Codec::Json).await;
    assert_eq!(
        owner.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

async fn a_slow_reader_is_dropped_while_others_continue(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        s.subscriber_queue = 16;
        s.ws_command_burst = 100_000;
        s.ws_commands_per_second = 100_000;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut slow = Ws::connect_small_buffer(&app, &w.tech.access, Codec::Json).await;
    let head = slow.subscribe(case, 0).await;
    let mut fast = app.ws(&w.admin, Codec::Json).await;
    fast.subscribe(case, head).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;

    // The slow reader reads nothing while far more than its bound (and the socket buffers) is
    // sent; the fast one reads as it comes.
    let big = "x".repeat(8_000);
    let n = 300u64;
    let reader = actix_rt::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.last() != Some(&(head + n)) {
            match fast.recv().await {
                Some(ServerBody::Event(e)) if e.case_id == case => seqs.push(e.seq),
                Some(_) => {}
                None => break,
            }
        }
        seqs
    });
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = doctor.new_id();
        doctor.send_with_id(&id, post(case, &big)).await;
        ids.push(id);
    }
    for id in &ids {
        doctor.answer(id).await.unwrap();
    }
    let seqs = reader.await.unwrap();
    assert_eq!(seqs, (head + 1..=head + n).collect::<Vec<_>>(), "the fast reader got everything, in order");
    // The slow one, when it reads again, finds a resync and the socket closed.
    let resync = slow.wait_for(|f| matches!(f, ServerBody::Resync(_))).await;
    let ServerBody::Resync(r) = resync else { unreachable!() };
    assert_eq!((r.case_id, r.reason.as_str()), (Some(case), "lagged"));
    assert_eq!(slow.closed().await, Some(4000));
    // It resumes from where it was, without gap.
    let last = slow
        .buffered
        .iter()
        .filter_map(|f| if let ServerBody::Event(e) = f { Some(e.seq) } else { None })
        .max()
        .unwrap_or(head);
    assert_eq!(r.last_seq, Some(last));
    let mut again = app.ws(&w.tech, Codec::Json).await;
    again.subscribe(case, last).await;
    let got = again.events_until(case, head + n).await;
    assert_eq!(got.first().map(|e| e.seq), Some(last + 1));
}

async fn a_panicking_case_restarts_and_loses_nothing(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    tech.subscribe(case, 0).await;
    let restarts_before = app.state.registry.restarts();
    let mut acked = Vec::new();
    for round in 0..3 {
        let ids: Vec<String> = (0..10).map(|_| doctor.new_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            doctor.send_with_id(id, post(case, &format!("r{round} m{i}"))).await;
            if i == 5 {
                app.state.registry.inject_panic(case, articula_actors::case::PanicPoint::Now);
            }
        }
        for (i, id) in ids.iter().enumerate() {
            // A command caught by the restart is answered `unavailable`: retried with its id,
            // it is done exactly once.
            let seq = loop {
                match doctor.answer(id).await {
                    Ok(s) => break s.unwrap(),
                    Err(e) if e.code == ErrorCode::Unavailable => {
                        doctor.send_with_id(id, post(case, &format!("r{round} m{i}"))).await;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            };
            acked.push(seq);
        }
    }
    let last = *acked.iter().max().unwrap();
    let got = tech.events_until(case, last).await;
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "subscribers see every event once, in order");
    assert_eq!(acked.len(), 30);
    assert_eq!(messages_count(&app, case).await, 30);
    assert_eq!(last, 2 + 30, "case_created, status_changed, then exactly the 30 messages");
    // The panics did happen: each round's one restarted the actor (its supervisor did).
    assert_eq!(app.state.registry.restarts(), restarts_before + 3);
}

async fn revoking_a_user_closes_their_socket(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    tech.subscribe(case, 0).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.subscribe(case, 0).await;

    // By an operator, from another process (the CLI): within a second.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_articula"));
    cmd.args(["user", "revoke", "--email", &w.tech.email])
        .env_clear()
        .env("ARTICULA_DATA_DIR", app.dir.path())
        .env("ARTICULA_LOG", "warn");
    if let Some(url) = &app.settings.database_url {
        cmd.env("ARTICULA_DATABASE_URL", url.expose());
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    let code = tokio::time::timeout(Duration::from_secs(1), tech.closed())
        .await
        .expect("socket still open after a second");
    assert_eq!(code, Some(4001));
    assert!(start.elapsed() < Duration::from_secs(1));
    // The revoked user cannot reconnect; the doctor's socket is untouched.
    assert!(Ws::connect(&app, Some(&w.tech.access), Codec::Json).await.is_err());
    doctor.post(case, "still here").await;

    // "Log out every device" closes the doctor's sockets at once.
    let res = app.post("/api/v1/auth/logout-all", &w.doctor, json!({})).await;
    assert!(res.status().is_success());
    let code = tokio::time::timeout(Duration::from_secs(1), doctor.closed()).await.expect("still open");
    assert_eq!(code, Some(4001));
}

async fn bad_frames_get_error_codes_and_change_nothing(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let foreign = app.submitted_case(&w.foreign_doctor, "Theirs", w.other_lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    ws.subscribe(case, 0).await;
    let events_before = app.count("SELECT COUNT(*) FROM events").await;

    let raw: Vec<(&str, Option<&str>, ErrorCode)> = vec![
        (r#"{"v":1,"id":"a","type":"launch_rocket","data":{}}"#, Some("a"), ErrorCode::UnknownType),
        (r#"{"v":2,"id":"b","type":"ping"}"#, Some("b"), ErrorCode::UnsupportedVersion),
        (
            r#"{"v":1,"id":"c","type":"post_message","data":{"case_id":"x","text":"hi"}}"#,
            Some("c"),
            ErrorCode::ValidationFailed,
        ),
        (
            r#"{"v":1,"id":"d","type":"post_message","data":{"text":"no case"}}"#,
            Some("d"),
            ErrorCode::ValidationFailed,
        ),
        (r#"{"v":1,"id":"e","type":"ping","data":{},"extra":true}"#, Some("e"), ErrorCode::UnknownField),
        (
            r#"{"v":1,"type":"post_message","data":{"case_id":"00000000-0000-0000-0000-000000000000","text":"no id"}}"#,
            None,
            ErrorCode::ValidationFailed,
        ),
        ("{not json", None, ErrorCode::MalformedFrame),
        ("[1,2,3]", None, ErrorCode::MalformedFrame),
    ];
    for (text, id, code) in raw {
        ws.send_raw(text.as_bytes().to_vec()).await;
        let f = ws.wait_for(|f| matches!(f, ServerBody::Error(_))).await;
        let ServerBody::Error(e) = f else { unreachable!() };
        assert_eq!((e.id.as_deref(), e.code), (id, code), "{text}");
    }
    // Oversized frame (over the configured limit, under the hard one).
    let huge = format!(
        r#"{{"v":1,"id":"h","type":"post_message","data":{{"case_id":"{case}","text":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    ws.send_raw(huge.into_bytes()).await;
    let ServerBody::Error(e) = ws.wait_for(|f| matches!(f, ServerBody::Error(_))).await else {
        unreachable!()
    };
    assert_eq!(e.code, ErrorCode::FrameTooLarge);
    // Commands on a case the user cannot see are answered like a missing case.
    assert_eq!(ws.call(post(foreign, "leak?")).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(ws.call(post(CaseId::new(), "nowhere")).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        ws.call(ClientBody::Subscribe(Subscribe { case_id: foreign, since: None })).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    // Invalid Rx values and illegal status transitions.
    assert_eq!(
        ws.call(edit(case, "teeth.19.shade", 0, Some("A2"))).await.unwrap_err().code,
        ErrorCode::InvalidRx
    );
    let err = ws
        .call(ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Shipped, reason: None }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidTransition);
    assert_eq!(ws.call(post(case, "   ")).await.unwrap_err().code, ErrorCode::ValidationFailed);
    // MessagePack garbage on a MessagePack socket.
    let mut mp = app.ws(&w.doctor, Codec::MsgPack).await;
    mp.send_raw(vec![0xc1, 0x00, 0xff]).await;
    let ServerBody::Error(e) = mp.wait_for(|f| matches!(f, ServerBody::Error(_))).await else {
        unreachable!()
    };
    assert_eq!(e.code, ErrorCode::MalformedFrame);
    // Text on a MessagePack socket.
    mp.stream.send_text("{}").await;
    let ServerBody::Error(e) = mp.wait_for(|f| matches!(f, ServerBody::Error(_))).await else {
        unreachable!()
    };
    assert_eq!(e.code, ErrorCode::MalformedFrame);

    // Nothing changed, and both sockets still work.
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, events_before);
    assert!(ws.post(case, "still works").await > 0);
    let id = mp.new_id();
    mp.send_with_id(&id, ClientBody::Ping(Empty {})).await;
    let pong = mp.wait_for(|f| matches!(f, ServerBody::Pong(_))).await;
    assert_eq!(pong, ServerBody::Pong(Pong { id: Some(id) }));
}

trait SendText {
    async fn send_text(&mut self, t: &str);
}

impl SendText
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn send_text(&mut self, t: &str) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::Text(t.to_owned().into())).await.unwrap();
    }
}

async fn the_socket_authenticates_by_header_frame_or_same_site_cookie(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // No credentials: only `auth` is accepted.
    let mut anon = Ws::connect(&app, None, Codec::Json).await.unwrap();
    let err = anon.call(ClientBody::Subscribe(Subscribe { case_id: case, since: None })).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    let err = anon.call(ClientBody::Auth(Auth { token: "at_forged".into() })).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenInvalid);
    anon.call(ClientBody::Auth(Auth { token: w.doctor.access.clone() })).await.unwrap();
    assert!(matches!(anon.wait_for(|f| matches!(f, ServerBody::Welcome(_))).await, ServerBody::Welcome(_)));
    anon.subscribe(case, 0).await;

    // A bad header token is refused at the upgrade, with the REST error body and headers.
    match Ws::connect(&app, Some("at_forged"), Codec::Json).await.map(|_| ()) {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 401);
            assert!(
                res.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'")
            );
            let body: serde_json::Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"], "token_invalid");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    // Only the WebSocket endpoint upgrades; a plain GET of it is told what it is.
    let elsewhere = Ws::connect_with(&app, Codec::Json, |r| {
        *r.uri_mut() = format!("wss://127.0.0.1:{}/api/v1/cases", app.port).parse().unwrap();
    })
    .await;
    match elsewhere.map(|_| ()) {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    // A client that sends its first frame in the same write as its handshake is served: the
    // bytes that arrive with the upgrade are not lost.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let connector = tokio_rustls::TlsConnector::from(app.tls_config());
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut raw = connector.connect(name, tcp).await.unwrap();
        let mut bytes = format!(
            "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: articula.v1+json\r\nAuthorization: Bearer {}\r\n\r\n",
            app.port, w.doctor.access
        )
        .into_bytes();
        let ping = br#"{"v":1,"type":"ping","id":"early"}"#;
        let mask = [7u8, 1, 9, 3];
        bytes.extend_from_slice(&[0x81, 0x80 | ping.len() as u8]);
        bytes.extend_from_slice(&mask);
        bytes.extend(ping.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        raw.write_all(&bytes).await.unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&seen).contains(r#""id":"early""#) {
            assert!(Instant::now() < deadline, "no pong: {:?}", String::from_utf8_lossy(&seen));
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        assert!(text.to_ascii_lowercase().contains("sec-websocket-protocol: articula.v1+json"), "{text}");
        assert!(text.contains(r#""type":"pong""#), "{text}");
    }
    let plain = app.http.get(app.path("/api/v1/ws")).send().await.unwrap();
    assert_eq!(plain.status(), 422);
    assert_eq!(plain.json::<serde_json::Value>().await.unwrap()["error"], "validation_failed");
    // The session cookie works from the server's own origin, not from another site.
    let cookie = format!("__Host-articula_at={}", w.doctor.access);
    let own = Ws::connect_with(&app, Codec::Json, |r| {
        r.headers_mut().insert("cookie", cookie.parse().unwrap());
        r.headers_mut().insert("origin", format!("https://127.0.0.1:{}", app.port).parse().unwrap());
    })
    .await;
    assert!(own.is_ok());
    let evil = Ws::connect_with(&app, Codec::Json, |r| {
        r.headers_mut().insert("cookie", cookie.parse().unwrap());
        r.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    })
    .await;
    assert!(evil.is_err(), "a cross-site page could open a socket with the user's cookie");
    // A browser whose access cookie expired (it still has the CSRF cookie) is told at once.
    let expired = Ws::connect_with(&app, Codec::Json, |r| {
        r.headers_mut().insert("cookie", "__Host-articula_csrf=csrf_x".parse().unwrap());
        r.headers_mut().insert("origin", format!("https://127.0.0.1:{}", app.port).parse().unwrap());
    })
    .await;
    match expired {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // A token in the URL is not a credential.
    let in_url = Ws::connect_with(&app, Codec::Json, |r| {
        *r.uri_mut() =
            format!("wss://127.0.0.1:{}/api/v1/ws?token={}", app.port, w.doctor.access).parse().unwrap();
    })
    .await
    .unwrap();
    let mut in_url = in_url;
    let err = in_url.call(ClientBody::Subscribe(Subscribe { case_id: case, since: None })).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
}

async fn rerouting_removes_the_old_lab(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    tech.subscribe(case, 0).await;
    let mut lab_board = app.ws(&w.lab_admin, Codec::Json).await;
    lab_board.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap();
    let other_lab_user = app.member("tech2@t.test", w.other_lab, Role::LabTech, "lab").await;

    let res = app.patch(&format!("/api/v1/cases/{case}"), &w.admin, json!({"lab_id": w.other_lab})).await;
    assert!(res.status().is_success());
    let ServerBody::Resync(r) = tech.wait_for(|f| matches!(f, ServerBody::Resync(_))).await else {
        unreachable!()
    };
    assert_eq!(r.reason, "access_changed");
    assert!(
        !tech
            .buffered
            .iter()
            .any(|f| matches!(f, ServerBody::Event(e) if matches!(e.data, EventData::CaseUpdated { .. })))
    );
    let ServerBody::Board(b) =
        lab_board.wait_for(|f| matches!(f, ServerBody::Board(b) if !b.removed.is_empty())).await
    else {
        unreachable!()
    };
    assert_eq!(b.removed, [case]);
    assert_eq!(tech.call(post(case, "still mine?")).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        app.get(&format!("/api/v1/cases/{case}"), &w.tech).await.status(),
        reqwest::StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v1/cases/{case}"), &other_lab_user).await.status(),
        reqwest::StatusCode::OK
    );
}

async fn presence_typing_and_read_receipts(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let head = doctor.subscribe(case, 0).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    tech.subscribe(case, head).await;
    let ServerBody::Presence(p) =
        doctor.wait_for(|f| matches!(f, ServerBody::Presence(p) if p.users.len() == 2)).await
    else {
        unreachable!()
    };
    assert!(p.users.contains(&w.tech.user_id));

    tech.call(ClientBody::Typing(CaseRef { case_id: case })).await.unwrap();
    let ServerBody::Typing(t) = doctor.wait_for(|f| matches!(f, ServerBody::Typing(_))).await else {
        unreachable!()
    };
    assert_eq!(t.user_id, w.tech.user_id);
    assert!(!tech.buffered.iter().any(|f| matches!(f, ServerBody::Typing(_))), "own typing echoed");

    let seq = doctor.post(case, "read me").await;
    tech.call(ClientBody::MarkRead(MarkRead { case_id: case, seq })).await.unwrap();
    let ServerBody::Receipt(r) = doctor.wait_for(|f| matches!(f, ServerBody::Receipt(_))).await else {
        unreachable!()
    };
    assert_eq!((r.user_id, r.seq), (w.tech.user_id, seq));
    let err = tech.call(ClientBody::MarkRead(MarkRead { case_id: case, seq: seq + 100 })).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationFailed);
    // Ephemeral state is never stored; the read mark is.
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM events WHERE case_id = '{case}' AND kind NOT IN ('case_created', 'status_changed', 'message_posted')")).await, 0);
    assert_eq!(app.count(&format!("SELECT seq FROM read_marks WHERE case_id = '{case}'")).await, seq as i64);
    // A new subscriber learns the read marks; leaving updates presence.
    let mut admin = app.ws(&w.admin, Codec::Json).await;
    admin.subscribe(case, seq).await;
    let ServerBody::Receipt(r) = admin.wait_for(|f| matches!(f, ServerBody::Receipt(_))).await else {
        unreachable!()
    };
    assert_eq!(r.seq, seq);
    drop(tech);
    doctor.wait_for(|f| matches!(f, ServerBody::Presence(p) if !p.users.contains(&w.tech.user_id))).await;
}

async fn a_declined_proposal_and_a_rejected_design_change_nothing_else(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    let v1 =
        doctor.call(edit(case, "teeth.11.material", 0, Some("lithium_disilicate"))).await.unwrap().unwrap();
    let p = tech
        .call(ClientBody::ProposeRx(ProposeRx {
            case_id: case,
            changes: vec![RxChange {
                field: "teeth.11.material".into(),
                base_version: v1,
                value: Some("zirconia".into()),
            }],
            note: Some("thin walls".into()),
        }))
        .await
        .unwrap()
        .unwrap();
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.doctor).await;
    assert_eq!(
        (rx["proposals"][0]["status"].as_str(), rx["proposals"][0]["seq"].as_u64()),
        (Some("open"), Some(p))
    );
    let proposal_id: ProposalId = serde_json::from_value(rx["proposals"][0]["id"].clone()).unwrap();
    let decide = |accept| {
        ClientBody::DecideRxProposal(DecideRxProposal {
            case_id: case,
            proposal_id,
            accept,
            comment: Some("keep lithium disilicate".into()),
        })
    };
    // Only the doctor decides; declining leaves the Rx as it was.
    assert_eq!(tech.call(decide(false)).await.unwrap_err().code, ErrorCode::Forbidden);
    doctor.call(decide(false)).await.unwrap();
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.tech).await;
    assert_eq!(rx["proposals"][0]["status"], "declined");
    assert_eq!(rx["rx_version"], v1);
    let f = &rx["fields"][0];
    assert_eq!(
        (f["field"].as_str(), f["value"].as_str()),
        (Some("teeth.11.material"), Some("lithium_disilicate"))
    );
    // A decided proposal cannot be decided again.
    assert_eq!(doctor.call(decide(true)).await.unwrap_err().code, ErrorCode::Conflict);

    // A rejected design sends the case back to design, with the doctor's reason kept.
    tech.call(ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Received, reason: None }))
        .await
        .unwrap();
    let sha = "c".repeat(64);
    add_design(&app, case, &w.tech, &sha).await;
    tech.call(ClientBody::RequestApproval(RequestApproval {
        case_id: case,
        file_sha256: sha.clone(),
        comment: Some("crown 11, v1".into()),
    }))
    .await
    .unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    let id: ApprovalId = serde_json::from_value(approvals[0]["id"].clone()).unwrap();
    doctor
        .call(ClientBody::DecideApproval(DecideApproval {
            case_id: case,
            approval_id: id,
            decision: Decision::Reject,
            comment: Some("open margin distal".into()),
        }))
        .await
        .unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.tech).await;
    assert_eq!(approvals[0]["status"], "rejected");
    assert_eq!(approvals[0]["decision_comment"], "open margin distal");
    assert_eq!(approvals[0]["decided_by"], json!(w.doctor.user_id));
    assert_eq!(app.get_json(&format!("/api/v1/cases/{case}"), &w.tech).await["status"], "in_design");
    // The lab can ask again on the same file.
    tech.call(ClientBody::RequestApproval(RequestApproval {
        case_id: case,
        file_sha256: sha,
        comment: None,
    }))
    .await
    .unwrap();
    let approvals = app.get_json(&format!("/api/v1/cases/{case}/approvals"), &w.doctor).await;
    assert_eq!(
        (approvals[0]["status"].as_str(), approvals[1]["status"].as_str()),
        (Some("rejected"), Some("pending"))
    );
}

async fn the_event_log_pages_by_seq(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    let mut head = 0;
    for i in 0..9 {
        head = ws.post(case, &format!("m{i}")).await;
    }
    // Following `next_after` from the start visits every event once, in order.
    let mut seqs = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = app.get_json(&format!("/api/v1/cases/{case}/events?after={after}&limit=4"), &w.tech).await;
        pages += 1;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 4);
        seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    assert_eq!(pages, head.div_ceil(4) + u64::from(head % 4 == 0));
    // The tail after a seq, as a reconnecting client would ask for it.
    let page = app.get_json(&format!("/api/v1/cases/{case}/events?after={}", head - 2), &w.doctor).await;
    let tail: Vec<_> =
        page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!((tail, page["next_after"].is_null()), (vec![head - 1, head], true));
    // Bad paging parameters are refused with a code.
    for q in ["after=-1", "after=abc", "limit=ten", "page=2"] {
        let res = app.get(&format!("/api/v1/cases/{case}/events?{q}"), &w.doctor).await;
        assert_eq!(res.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "validation_failed", "{q}");
    }
    // Invisible to a foreign lab, exactly like a missing case.
    let res = app.get(&format!("/api/v1/cases/{case}/events"), &w.foreign_tech).await;
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
}
