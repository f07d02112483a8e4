//! No tenant can hurt another, memory bounded on every path, cases that live for years: the
//! hardening of the realtime core, through real sockets on both databases.

use std::time::{Duration, Instant};

use articula_actors::case::PanicPoint;
use articula_protocol::*;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_socket_handles_pipelined_frames_in_order,
    text_that_cannot_be_stored_is_refused_before_it_gets_a_seq,
    one_bad_item_fails_only_itself_in_a_shared_commit,
    full_queues_refuse_at_once_and_change_nothing,
    a_resume_from_the_log_is_paged_and_meets_the_live_stream,
    presence_and_read_marks_that_change_during_a_catch_up_arrive,
    long_cases_start_from_a_snapshot,
    access_is_decided_against_the_case_as_it_is_now,
    a_membership_change_reaches_live_sockets,
    deleted_messages_keep_no_text_for_members,
    command_ids_are_exactly_once_beyond_the_window,
    a_panic_in_any_handler_loses_nothing,
    retired_case_actors_stop,
    an_rx_field_has_one_name,
);

fn text_of(e: &Event) -> String {
    match &e.data {
        EventData::MessagePosted { text, .. } => text.clone(),
        other => panic!("not a message: {other:?}"),
    }
}

/// Settings for tests that send many commands quickly.
fn no_rate_limit(s: &mut articula::config::Settings) {
    s.ws_commands_per_second = 1_000_000;
    s.ws_command_burst = 1_000_000;
}

/// Opens a draft case straight through the store (as `POST /cases` does, without HTTP).
async fn quick_case(app: &TestApp, clinic: OrgId, doctor: UserId, label: &str) -> CaseId {
    let case_id = CaseId::new();
    let first = articula_actors::ports::StoredEvent {
        case_id,
        seq: 1,
        at: articula_actors::clock::now_ms(),
        actor: doctor,
        client_id: None,
        digest: None,
        ip: None,
        data: EventData::CaseCreated {
            label: label.into(),
            clinic_id: clinic,
            doctor_id: doctor,
            lab_id: None,
            due_date: None,
        },
    };
    let state = articula_actors::case::state::CaseState::from_log(std::slice::from_ref(&first)).unwrap();
    app.state.db.create_case(&first, &state.row(), &clinic.to_string(), &doctor.to_string()).await.unwrap();
    case_id
}

async fn head_of(app: &TestApp, case: CaseId) -> i64 {
    app.count(&format!("SELECT last_seq FROM cases WHERE id = '{case}'")).await
}

async fn a_socket_handles_pipelined_frames_in_order(app: TestApp) {
    let w = app.world().await;
    for codec in [Codec::Json, Codec::MsgPack] {
        let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
        let other = app.submitted_case(&w.doctor, "Bridge", w.lab).await;
        let head = head_of(&app, case).await as u64;
        // A socket without credentials: auth, subscribe and 51 posts in one write.
        let mut ws = Ws::connect(&app, None, codec).await.unwrap();
        let mut frames = vec![
            ("a".to_owned(), ClientBody::Auth(Auth { token: w.doctor.access.clone() })),
            ("s".to_owned(), ClientBody::Subscribe(Subscribe { case_id: case, since: Some(head) })),
        ];
        frames.extend((0..51).map(|i| (format!("p{i}"), post(case, &format!("message {i}")))));
        // And 20 to a case the socket is not subscribed to, interleaved.
        frames.extend((0..20).map(|i| (format!("o{i}"), post(other, &format!("other {i}")))));
        let ids: Vec<String> = frames.iter().map(|(id, _)| id.clone()).collect();
        ws.send_all(&frames).await;
        let answers = ws.answers_in_order(&ids).await;
        // Auth, then subscribe, come first (the frames after them waited for them); the acks of
        // each case come in the order the posts were sent (two cases commit independently).
        assert_eq!(answers[0].0, "a");
        assert_eq!(answers[0].1.as_ref().ok(), Some(&None), "auth acked: {:?}", answers[0]);
        assert_eq!(answers[1].0, "s");
        assert_eq!(answers[1].1.as_ref().ok(), Some(&Some(head)), "subscribe acked with the head");
        let of = |prefix: char| -> Vec<(String, u64)> {
            answers
                .iter()
                .filter(|(id, _)| id.starts_with(prefix))
                .map(|(id, r)| (id.clone(), r.clone().unwrap().unwrap()))
                .collect()
        };
        let posts = of('p');
        let want: Vec<(String, u64)> = (0..51).map(|i| (format!("p{i}"), head + 1 + i)).collect();
        assert_eq!(posts, want, "acked in send order, seqs increasing in send order");
        let other_seqs: Vec<u64> = of('o').into_iter().map(|(_, s)| s).collect();
        let order: Vec<String> = of('o').into_iter().map(|(id, _)| id).collect();
        assert_eq!(order, (0..20).map(|i| format!("o{i}")).collect::<Vec<_>>());
        let first = other_seqs[0];
        assert_eq!(other_seqs, (first..first + 20).collect::<Vec<_>>());
        // The subscriber (this socket) got the events in the same order, with the same texts.
        let events = ws.events_until(case, head + 51).await;
        let got: Vec<(u64, String)> = events.iter().map(|e| (e.seq, text_of(e))).collect();
        let want: Vec<(u64, String)> = (0..51).map(|i| (head + 1 + i, format!("message {i}"))).collect();
        assert_eq!(got, want, "{codec:?}");
        // And the log agrees.
        let log = app.get_json(&format!("/api/v1/cases/{other}/messages?limit=50"), &w.doctor).await;
        let texts: Vec<&str> = log.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, (0..20).map(|i| format!("other {i}")).collect::<Vec<_>>());
    }
}

async fn text_that_cannot_be_stored_is_refused_before_it_gets_a_seq(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let head = head_of(&app, case).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    tech.subscribe(case, head as u64).await;
    // Every text field: chat, labels, status reasons, Rx values; NUL (PostgreSQL cannot store
    // it), other controls, and invisible characters where a name must be what it shows.
    let bad: Vec<(ClientBody, ErrorCode)> = vec![
        (post(case, "before\u{0}after"), ErrorCode::ValidationFailed),
        (post(case, "\u{1b}[2Jcleared"), ErrorCode::ValidationFailed),
        (post(case, "\u{7f}"), ErrorCode::ValidationFailed),
        (
            ClientBody::UpdateCase(UpdateCase {
                case_id: case,
                label: Some("scan\u{202e}lts.exe".into()),
                due_date: None,
                lab_id: None,
            }),
            ErrorCode::ValidationFailed,
        ),
        (
            ClientBody::UpdateCase(UpdateCase {
                case_id: case,
                label: Some("Crown\u{200b}".into()),
                due_date: None,
                lab_id: None,
            }),
            ErrorCode::ValidationFailed,
        ),
        (
            ClientBody::EditRx(EditRx {
                case_id: case,
                changes: vec![RxChange {
                    field: "notes".into(),
                    base_version: 0,
                    value: Some("a\u{0}".into()),
                }],
            }),
            ErrorCode::InvalidRx,
        ),
        (
            ClientBody::SetStatus(SetStatus {
                case_id: case,
                status: CaseStatus::OnHold,
                reason: Some("wait\u{0}".into()),
            }),
            ErrorCode::ValidationFailed,
        ),
    ];
    for (body, want) in bad {
        let err = doctor.call(body.clone()).await.expect_err("refused");
        assert_eq!(err.code, want, "{body:?}: {err:?}");
    }
    // A lone surrogate cannot even be decoded: refused with the frame, nothing happens.
    let raw = format!(
        r#"{{"v":1,"type":"post_message","id":"x1","data":{{"case_id":"{case}","text":"a\ud800b"}}}}"#
    );
    doctor.send_raw(raw.into_bytes()).await;
    let f = doctor.wait_for(|f| matches!(f, ServerBody::Error(_))).await;
    let ServerBody::Error(e) = f else { unreachable!() };
    assert!(
        matches!(e.code, ErrorCode::MalformedFrame | ErrorCode::InvalidJson | ErrorCode::ValidationFailed),
        "{e:?}"
    );
    // REST says the same.
    let res = app.patch(&format!("/api/v1/cases/{case}"), &w.doctor, json!({"label": "x\u{0}"})).await;
    assert_eq!(res.status(), 422);
    // Nothing got a seq; the next message does, and carriage returns became newlines.
    assert_eq!(head_of(&app, case).await, head);
    let seq = doctor.post(case, "line one\r\nline two").await;
    assert_eq!(seq, head as u64 + 1);
    let e = tech.event(case, seq).await;
    assert_eq!(text_of(&e), "line one\nline two");
    assert!(!tech.buffered.iter().any(|f| matches!(f, ServerBody::Event(e) if e.seq != seq)));
}

/// Makes the database refuse, as a constraint would, any event whose data holds `POISON`.
async fn poison_trigger(app: &TestApp) {
    match app.backend {
        Backend::Sqlite => {
            app.sql(
                "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.data LIKE '%POISON%'
                 BEGIN SELECT RAISE(ABORT, 'poisoned item'); END",
            )
            .await
        }
        Backend::Postgres => {
            app.sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
                   IF NEW.data LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned item'; END IF; RETURN NEW;
                 END $$ LANGUAGE plpgsql",
            )
            .await;
            app.sql("CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()")
                .await
        }
    }
}

async fn one_bad_item_fails_only_itself_in_a_shared_commit(app: TestApp) {
    // Commits at most every 200 ms: what two cases send within that time shares a commit.
    let app = spawn_app_with(app.backend, |s| {
        no_rate_limit(s);
        s.commit_interval_ms = 200;
    })
    .await;
    let w = app.world().await;
    let mine = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let theirs = app.submitted_case(&w.foreign_doctor, "Bridge", w.other_lab).await;
    let primer = app.submitted_case(&w.doctor2, "Inlay", w.lab).await;
    poison_trigger(&app).await;
    let mut a = app.ws(&w.doctor, Codec::Json).await;
    let mut b = app.ws(&w.foreign_doctor, Codec::MsgPack).await;
    let mut c = app.ws(&w.doctor2, Codec::Json).await;
    let mut watcher = app.ws(&w.tech, Codec::Json).await;
    let head = head_of(&app, mine).await as u64;
    watcher.subscribe(mine, head).await;

    // Hold the write path with one commit, so that everything sent next waits for the same
    // next batch: one tenant's bad item and another tenant's messages share a transaction.
    let locker = Locker::lock(&app).await;
    let primer_id = c.new_id();
    c.send_with_id(&primer_id, post(primer, "primer")).await;
    locker.wait_until_blocked(&app).await;
    let theirs_frames: Vec<(String, ClientBody)> =
        (0..20).map(|i| (format!("b{i}"), post(theirs, &format!("theirs {i}")))).collect();
    let mine_frames = vec![
        ("ok1".to_owned(), post(mine, "fine")),
        ("bad".to_owned(), post(mine, "POISON pill")),
        ("ok2".to_owned(), post(mine, "also fine")),
    ];
    b.send_all(&theirs_frames).await;
    a.send_all(&mine_frames).await;
    // The first change of each case waits in the group commit's queue before the lock goes
    // (the rest wait in their case for its commit in flight, and then share the next one).
    let deadline = Instant::now() + WAIT;
    while app.state.registry.commit_queue().get() < 2 {
        assert!(Instant::now() < deadline, "the commands never reached the group commit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    locker.release().await;
    c.answer(&primer_id).await.unwrap();

    // The other tenant's commands are all acked, in order, and durable.
    let ids: Vec<String> = theirs_frames.iter().map(|(i, _)| i.clone()).collect();
    let answers = b.answers_in_order(&ids).await;
    assert!(answers.iter().all(|(_, r)| matches!(r, Ok(Some(_)))), "{answers:?}");
    let texts = app.get_json(&format!("/api/v1/cases/{theirs}/messages?limit=50"), &w.foreign_doctor).await;
    assert_eq!(texts.as_array().unwrap().len(), 20);
    // In the failing case: what came before the bad item is durable, the bad item is refused
    // with a code that says retrying will not help, and what came after it may be retried.
    let ids: Vec<String> = mine_frames.iter().map(|(i, _)| i.clone()).collect();
    let answers = a.answers_in_order(&ids).await;
    let ok1 = answers[0].1.clone().unwrap().unwrap();
    assert_eq!(ok1, head + 1);
    assert_eq!(answers[1].1.as_ref().err().map(|e| e.code), Some(ErrorCode::NotStorable), "{answers:?}");
    let ok2 = match &answers[2].1 {
        Ok(Some(seq)) => *seq,
        Err(e) if e.code == ErrorCode::Unavailable => {
            a.call_with_id("ok2", post(mine, "also fine")).await.unwrap().unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(ok2, ok1 + 1, "no gap where the bad item was");
    // The watcher saw exactly the durable events, in order; never the bad one.
    let events = watcher.events_until(mine, ok2).await;
    let got: Vec<(u64, String)> = events.iter().map(|e| (e.seq, text_of(e))).collect();
    assert_eq!(got, vec![(ok1, "fine".to_owned()), (ok2, "also fine".to_owned())]);
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE data LIKE '%POISON%'").await, 0);
}

async fn full_queues_refuse_at_once_and_change_nothing(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        no_rate_limit(s);
        s.case_queue_max = 4;
        s.commit_queue_max = 10;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut others = Vec::new();
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    for i in 0..12 {
        let c = app.case(&w.doctor, &format!("Case {i}"), None).await;
        ws.post(c, "open").await;
        others.push(c);
    }
    let head = head_of(&app, case).await as u64;
    let locker = Locker::lock(&app).await;
    let first = ws.new_id();
    ws.send_with_id(&first, post(case, "in flight")).await;
    locker.wait_until_blocked(&app).await;
    // The commit is held back: 4 more may wait behind it, the rest are refused at once.
    let frames: Vec<(String, ClientBody)> =
        (0..20).map(|i| (format!("q{i}"), post(case, &format!("q {i}")))).collect();
    ws.send_all(&frames).await;
    let answers = ws.answers_in_order(&frames_ids(4..20, "q")).await;
    assert!(
        answers.iter().all(|(_, r)| matches!(r, Err(e) if e.code == ErrorCode::Unavailable)),
        "refused while the commit is held: {answers:?}"
    );
    // Many cases: the group commit's queue is bounded too. Ten changes of ten cases wait…
    for (i, c) in others[..10].iter().enumerate() {
        ws.send_with_id(&format!("m{i}"), post(*c, "hello")).await;
        let deadline = Instant::now() + WAIT;
        while app.state.registry.commit_queue().get() < i + 1 {
            assert!(Instant::now() < deadline, "the change never reached the group commit");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // …and the next ones are refused at once, while the lock is still held.
    for c in &others[10..] {
        assert_eq!(ws.call(post(*c, "hello")).await.unwrap_err().code, ErrorCode::Unavailable);
    }
    locker.release().await;
    // What was accepted commits, in order; nothing refused was stored.
    assert_eq!(ws.answer(&first).await.unwrap(), Some(head + 1));
    let answers = ws.answers_in_order(&frames_ids(0..4, "q")).await;
    let seqs: Vec<u64> = answers.iter().map(|(_, r)| r.clone().unwrap().unwrap()).collect();
    assert_eq!(seqs, (head + 2..=head + 5).collect::<Vec<_>>());
    assert_eq!(head_of(&app, case).await as u64, head + 5);
    let answers = ws.answers_in_order(&frames_ids(0..10, "m")).await;
    assert!(answers.iter().all(|(_, r)| matches!(r, Ok(Some(_)))), "{answers:?}");
    for c in &others[10..] {
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM messages WHERE case_id = '{c}'")).await, 1);
    }
}

fn frames_ids(range: std::ops::Range<usize>, prefix: &str) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Appends `n` chat messages to a case's log directly in the database (a case that has lived
/// for years, made in a second), keeping the projections in step. The case's actor must not
/// be live.
async fn seed_messages(app: &TestApp, case: CaseId, author: UserId, n: u64) -> u64 {
    let start = head_of(app, case).await as u64;
    let at = articula_actors::clock::now_ms();
    articula::with_db!(&app.state.db, pool => {
        let mut tx = pool.begin().await.unwrap();
        for chunk in (start + 1..=start + n).collect::<Vec<_>>().chunks(400) {
            let rows: Vec<(u64, MessageId, String)> = chunk
                .iter()
                .map(|seq| {
                    let id = MessageId::new();
                    let data = EventData::MessagePosted { message_id: id, text: format!("old {seq}"), attachments: vec![], reply_to: None, mentions: vec![] };
                    (*seq, id, serde_json::to_string(&data).unwrap())
                })
                .collect();
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO events (case_id, seq, kind, actor_id, at, data) ");
            qb.push_values(&rows, |mut b, (seq, _, data)| {
                b.push_bind(case.to_string()).push_bind(*seq as i64).push_bind("message_posted")
                    .push_bind(author.to_string()).push_bind(at).push_bind(data.as_str());
            });
            qb.build().execute(&mut *tx).await.unwrap();
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO messages (id, case_id, seq, author_id, text, created_at) ");
            qb.push_values(&rows, |mut b, (seq, id, _)| {
                b.push_bind(id.to_string()).push_bind(case.to_string()).push_bind(*seq as i64)
                    .push_bind(author.to_string()).push_bind(format!("old {seq}")).push_bind(at);
            });
            qb.build().execute(&mut *tx).await.unwrap();
        }
        sqlx::query("UPDATE cases SET last_seq = $1 WHERE id = $2")
            .bind((start + n) as i64).bind(case.to_string()).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    });
    start + n
}

async fn a_resume_from_the_log_is_paged_and_meets_the_live_stream(app: TestApp) {
    let app = spawn_app_with(app.backend, no_rate_limit).await;
    let w = app.world().await;
    let case = app.case(&w.doctor, "Crown", None).await;
    let head = seed_messages(&app, case, w.doctor.user_id, 3000).await;
    let mut sockets = Vec::new();
    for i in 0..5 {
        let mut ws = app.ws(&w.doctor, if i % 2 == 0 { Codec::Json } else { Codec::MsgPack }).await;
        let id = ws.new_id();
        ws.send_with_id(&id, ClientBody::Subscribe(Subscribe { case_id: case, since: Some(0) })).await;
        sockets.push((ws, id));
    }
    // While they catch up, the case goes on.
    let mut poster = app.ws(&w.doctor, Codec::Json).await;
    let mut last = head;
    for i in 0..30 {
        last = poster.post(case, &format!("live {i}")).await;
    }
    assert_eq!(last, head + 30);
    for (mut ws, id) in sockets {
        let acked = ws.answer(&id).await.unwrap().unwrap();
        assert!(acked >= head);
        let seqs: Vec<u64> = ws.events_until(case, last).await.iter().map(|e| e.seq).collect();
        assert_eq!(seqs.len() as u64, last, "every event exactly once");
        assert!(seqs.iter().copied().eq(1..=last), "in order, no gap, no duplicate");
    }
}

/// Presence and read receipts are not in the log: a socket reading pages is not on the live
/// stream, so what changed meanwhile must reach it when it is back on it.
async fn presence_and_read_marks_that_change_during_a_catch_up_arrive(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        no_rate_limit(s);
        s.case_idle_secs = 1;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // The case's actor stops when idle, so that it starts again from the seeded log.
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.state.registry.alive() > 0 {
        assert!(Instant::now() < deadline, "the idle case actor did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = seed_messages(&app, case, w.doctor.user_id, 3000).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let id = tech.new_id();
    tech.send_with_id(&id, ClientBody::Subscribe(Subscribe { case_id: case, since: Some(0) })).await;
    // While the technician's socket reads 3,000 events a page at a time, the doctor arrives and
    // reads the case.
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    doctor.subscribe(case, head).await;
    doctor.call(ClientBody::MarkRead(MarkRead { case_id: case, seq: head })).await.unwrap();
    tech.answer(&id).await.unwrap().unwrap();
    let doctor_id = w.doctor.user_id;
    let seen = tokio::time::timeout(WAIT, async {
        tech.wait_for(|f| matches!(f, ServerBody::Presence(p) if p.users.contains(&doctor_id))).await;
        tech.wait_for(|f| matches!(f, ServerBody::Receipt(r) if r.user_id == doctor_id && r.seq == head))
            .await;
    })
    .await;
    assert!(seen.is_ok(), "the doctor's arrival or read mark never reached the socket that was catching up");
}

async fn long_cases_start_from_a_snapshot(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        no_rate_limit(s);
        s.case_idle_secs = 1;
        s.snapshot_every = 16;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    doctor
        .call(ClientBody::EditRx(EditRx {
            case_id: case,
            changes: vec![RxChange {
                field: "teeth.11.shade".into(),
                base_version: 0,
                value: Some("A2".into()),
            }],
        }))
        .await
        .unwrap();
    let frames: Vec<(String, ClientBody)> =
        (0..300).map(|i| (format!("n{i}"), post(case, &format!("note {i}")))).collect();
    doctor.send_all(&frames).await;
    let answers = doctor.answers_in_order(&frames_ids(0..300, "n")).await;
    let last = answers.last().unwrap().1.clone().unwrap().unwrap();
    tech.post(case, "from the lab").await;
    let messages =
        app.get_json(&format!("/api/v1/cases/{case}/messages?limit=200&before=20"), &w.doctor).await;
    let early: Vec<MessageId> =
        messages.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().parse().unwrap()).collect();
    let lab_message: MessageId =
        app.get_json(&format!("/api/v1/cases/{case}/messages?limit=1"), &w.doctor).await[0]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    drop(doctor);
    drop(tech);
    // The actor retires; the next start reads the latest snapshot and the events after it.
    let deadline = Instant::now() + WAIT;
    while app.state.registry.is_live(case) {
        assert!(Instant::now() < deadline, "the case never retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (loads, events) = app.state.registry.load_stats();
    let mut doctor = app.ws(&w.doctor, Codec::MsgPack).await;
    // A retry of a recent command is still recognised (the window is in the snapshot)…
    assert_eq!(doctor.call_with_id("n299", post(case, "note 299")).await.unwrap(), Some(last));
    let (loads2, events2) = app.state.registry.load_stats();
    assert_eq!(loads2, loads + 1);
    assert!(events2 - events < 2 * 16, "read {} events after the snapshot", events2 - events);
    // …and another command under its id is not taken for a retry.
    assert_eq!(
        doctor.call_with_id("n299", post(case, "something else")).await.unwrap_err().code,
        ErrorCode::Conflict
    );
    // Old messages, no longer in memory, are looked up: edit, delete, reply; authorship holds.
    let edit = |m: MessageId, t: &str| {
        ClientBody::EditMessage(EditMessage { case_id: case, message_id: m, text: t.into() })
    };
    doctor.call(edit(early[2], "note 2, corrected")).await.unwrap();
    doctor
        .call(ClientBody::DeleteMessage(articula_protocol::MessageRef {
            case_id: case,
            message_id: early[4],
        }))
        .await
        .unwrap();
    assert_eq!(doctor.call(edit(early[4], "again")).await.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(doctor.call(edit(lab_message, "not mine")).await.unwrap_err().code, ErrorCode::Forbidden);
    let reply = ClientBody::PostMessage(PostMessage {
        case_id: case,
        text: "re".into(),
        attachments: vec![],
        reply_to: Some(early[6]),
        mentions: vec![],
    });
    doctor.call(reply).await.unwrap();
    let missing = ClientBody::PostMessage(PostMessage {
        case_id: case,
        text: "re".into(),
        attachments: vec![],
        reply_to: Some(MessageId::new()),
        mentions: vec![],
    });
    assert_eq!(doctor.call(missing).await.unwrap_err().code, ErrorCode::NotFound);
    // The Rx state came back too: an edit on a stale version conflicts.
    let stale = ClientBody::EditRx(EditRx {
        case_id: case,
        changes: vec![RxChange { field: "teeth.11.shade".into(), base_version: 0, value: Some("B1".into()) }],
    });
    assert_eq!(doctor.call(stale).await.unwrap_err().code, ErrorCode::RxConflict);
    let m = app.get_json(&format!("/api/v1/cases/{case}/messages?limit=200&before=20"), &w.doctor).await;
    assert_eq!(m[2]["text"], "note 2, corrected");
    assert!(m[4]["text"].is_null());
}

async fn access_is_decided_against_the_case_as_it_is_now(app: TestApp) {
    let w = app.world().await;
    // A draft routed to the lab and put on hold is still the clinic's own.
    let draft = app.case(&w.doctor, "Draft", Some(w.lab)).await;
    let res =
        app.post(&format!("/api/v1/cases/{draft}/status"), &w.doctor, json!({"status": "on_hold"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&format!("/api/v1/cases/{draft}"), &w.tech).await.status(), 404);
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let err =
        tech.call(ClientBody::Subscribe(Subscribe { case_id: draft, since: Some(0) })).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(tech.call(post(draft, "peek")).await.unwrap_err().code, ErrorCode::NotFound);
    let board = app.get_json(&format!("/api/v1/board?org_id={}", w.lab), &w.tech).await;
    assert!(!board["cases"].as_array().unwrap().iter().any(|c| c["case_id"] == draft.to_string()), "{board}");

    // A submitted case re-routed to another lab: the old lab's sockets lose it at that event,
    // subscribed or not, and cannot act on it right after.
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut watching = app.ws(&w.tech, Codec::Json).await;
    let head = watching.subscribe(case, 0).await;
    let mut acting = app.ws(&w.lab_admin, Codec::MsgPack).await;
    acting.post(case, "working on it").await;
    let mut admin = app.ws(&w.admin, Codec::Json).await;
    let reroute = admin
        .call(ClientBody::UpdateCase(UpdateCase {
            case_id: case,
            label: None,
            due_date: None,
            lab_id: Some(Some(w.other_lab)),
        }))
        .await
        .unwrap()
        .unwrap();
    // Right after the ack, on the very same sockets.
    assert_eq!(acting.call(post(case, "still here?")).await.unwrap_err().code, ErrorCode::NotFound);
    let status =
        ClientBody::SetStatus(SetStatus { case_id: case, status: CaseStatus::Received, reason: None });
    assert_eq!(acting.call(status.clone()).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(watching.call(post(case, "me too?")).await.unwrap_err().code, ErrorCode::NotFound);
    let resync = watching.wait_for(|f| matches!(f, ServerBody::Resync(r) if r.case_id == Some(case))).await;
    let ServerBody::Resync(r) = resync else { unreachable!() };
    assert_eq!(r.reason, "access_changed");
    assert!(!watching.buffered.iter().any(|f| matches!(f, ServerBody::Event(e) if e.seq >= reroute)));
    assert!(r.last_seq.is_some_and(|l| l >= head && l < reroute));
    // The new lab may act at once.
    let mut new_lab = app.ws(&w.foreign_tech, Codec::Json).await;
    new_lab.call(status).await.unwrap();
    // Nothing the old lab tried is in the log.
    let log = app.get_json(&format!("/api/v1/cases/{case}/events?limit=100"), &w.doctor).await;
    let actors: Vec<&str> =
        log["events"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    let tech_id = w.tech.user_id.to_string();
    assert!(!actors.contains(&tech_id.as_str()));
    let lab_admin_acts = actors.iter().filter(|a| **a == w.lab_admin.user_id.to_string()).count();
    assert_eq!(lab_admin_acts, 1);
}

async fn a_membership_change_reaches_live_sockets(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let head = tech.subscribe(case, 0).await;
    tech.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await.unwrap();
    // The technician leaves the lab (as `articula user ungrant` does): the live socket loses
    // the case and the board within a second, without reconnecting.
    let now = articula_actors::clock::now_ms();
    assert!(app.state.db.remove_membership(w.tech.user_id, w.lab, Role::LabTech, now).await.unwrap());
    let f = tech.wait_for(|f| matches!(f, ServerBody::Resync(r) if r.case_id == Some(case))).await;
    assert!(
        matches!(&f, ServerBody::Resync(r) if r.reason == "access_changed" && r.last_seq == Some(head)),
        "{f:?}"
    );
    tech.wait_for(
        |f| matches!(f, ServerBody::Resync(r) if r.case_id.is_none() && r.reason == "board_restarted"),
    )
    .await;
    assert_eq!(tech.call(post(case, "still here?")).await.unwrap_err().code, ErrorCode::NotFound);
    let board = tech.call(ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })).await;
    assert_eq!(board.unwrap_err().code, ErrorCode::NotFound);
    // Given back: the same socket may subscribe again once it has reloaded.
    app.state.db.add_membership(w.tech.user_id, w.lab, Role::LabTech, now).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match tech.call(ClientBody::Subscribe(Subscribe { case_id: case, since: Some(head) })).await {
            Ok(Some(h)) => break assert_eq!(h, head),
            Err(e) if e.code == ErrorCode::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("{other:?}"),
        }
    }
    tech.post(case, "back").await;
}

async fn deleted_messages_keep_no_text_for_members(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let seq = doctor.post(case, "wrong patient's details").await;
    doctor.post(case, "kept").await;
    let id: MessageId =
        app.get_json(&format!("/api/v1/cases/{case}/messages?limit=5"), &w.doctor).await[0]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    doctor
        .call(ClientBody::DeleteMessage(articula_protocol::MessageRef { case_id: case, message_id: id }))
        .await
        .unwrap();
    // The event log as members read it: REST and a socket resuming from before it (the case
    // is live, its resume ring holds the events).
    let log = app.get_json(&format!("/api/v1/cases/{case}/events?limit=100"), &w.tech).await;
    let posted = log["events"].as_array().unwrap().iter().find(|e| e["seq"] == seq).cloned().unwrap();
    assert_eq!(posted["data"]["text"], "", "{posted}");
    for codec in [Codec::Json, Codec::MsgPack] {
        let mut tech = app.ws(&w.tech, codec).await;
        let head = tech.subscribe(case, 0).await;
        let events = tech.events_until(case, head).await;
        let e = events.iter().find(|e| e.seq == seq).unwrap();
        assert_eq!(text_of(e), "");
        assert!(
            events
                .iter()
                .any(|e| matches!(&e.data, EventData::MessageDeleted { message_id } if *message_id == id))
        );
    }
    // The log itself keeps it, for the legal record.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM events WHERE case_id = '{case}' AND data LIKE '%wrong patient%'"
        ))
        .await,
        1
    );
}

async fn command_ids_are_exactly_once_beyond_the_window(app: TestApp) {
    let app = spawn_app_with(app.backend, no_rate_limit).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    let first = ws.call_with_id("first", post(case, "the first")).await.unwrap().unwrap();
    // A reused id with another command is a conflict, not the old ack.
    assert_eq!(ws.call_with_id("first", post(case, "another")).await.unwrap_err().code, ErrorCode::Conflict);
    // Push the id out of the case's in-memory window.
    for round in 0..11 {
        let frames: Vec<(String, ClientBody)> =
            (0..100).map(|i| (format!("r{round}-{i}"), post(case, "filler"))).collect();
        ws.send_all(&frames).await;
        let ids: Vec<String> = frames.iter().map(|(i, _)| i.clone()).collect();
        ws.answers_in_order(&ids).await;
    }
    let before = head_of(&app, case).await;
    // The database still knows it: the retry gets the original seq, nothing new is stored…
    assert_eq!(ws.call_with_id("first", post(case, "the first")).await.unwrap(), Some(first));
    // …and another command under it is refused.
    assert_eq!(ws.call_with_id("first", post(case, "another")).await.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(head_of(&app, case).await, before);
    let next = ws.post(case, "after").await;
    assert_eq!(next as i64, before + 1);
    let n = app
        .count(&format!("SELECT COUNT(*) FROM events WHERE case_id = '{case}' AND client_id = 'first'"))
        .await;
    assert_eq!(n, 1);

    // Read marks never go backwards, whatever order they arrive in.
    let frames = vec![
        ("m10".to_owned(), ClientBody::MarkRead(MarkRead { case_id: case, seq: 10 })),
        ("m5".to_owned(), ClientBody::MarkRead(MarkRead { case_id: case, seq: 5 })),
    ];
    ws.send_all(&frames).await;
    ws.answers_in_order(&["m10".to_owned(), "m5".to_owned()]).await;
    let mut other = app.ws(&w.tech, Codec::Json).await;
    other.subscribe(case, next).await;
    let mine = other.wait_for(|f| matches!(f, ServerBody::Receipt(r) if r.user_id == w.doctor.user_id)).await;
    assert!(matches!(&mine, ServerBody::Receipt(r) if r.seq == 10), "{mine:?}");
    let stored = app
        .count(&format!(
            "SELECT seq FROM read_marks WHERE case_id = '{case}' AND user_id = '{}'",
            w.doctor.user_id
        ))
        .await;
    assert_eq!(stored, 10);
}

async fn a_panic_in_any_handler_loses_nothing(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    let mut seen = head_of(&app, case).await as u64;
    tech.subscribe(case, seen).await;
    let restarts = app.state.registry.restarts();
    let points = [
        PanicPoint::Command,
        PanicPoint::Subscribe,
        PanicPoint::MarkRead,
        PanicPoint::Typing,
        PanicPoint::PresenceChanged,
    ];
    for (i, point) in points.into_iter().enumerate() {
        app.state.registry.inject_panic(case, point);
        // Trigger the handler; whoever was answered `unavailable` retries with the same id.
        match point {
            PanicPoint::Command => {
                let id = doctor.new_id();
                let r = doctor.call_with_id(&id, post(case, "struck")).await;
                assert_eq!(r.unwrap_err().code, ErrorCode::Unavailable);
                doctor.call_with_id(&id, post(case, "struck")).await.unwrap();
            }
            PanicPoint::Subscribe => {
                let mut other = app.ws(&w.admin, Codec::MsgPack).await;
                let sub = ClientBody::Subscribe(Subscribe { case_id: case, since: Some(0) });
                assert_eq!(other.call(sub.clone()).await.unwrap_err().code, ErrorCode::Unavailable);
                let head = other.call(sub).await.unwrap().unwrap();
                assert_eq!(other.events_until(case, head).await.len() as u64, head);
            }
            PanicPoint::MarkRead => {
                let m = ClientBody::MarkRead(MarkRead { case_id: case, seq: 1 });
                assert_eq!(doctor.call(m.clone()).await.unwrap_err().code, ErrorCode::Unavailable);
                doctor.call(m).await.unwrap();
            }
            PanicPoint::Typing => {
                doctor.subscribe(case, seen).await;
                doctor.call(ClientBody::Typing(CaseRef { case_id: case })).await.unwrap();
            }
            PanicPoint::PresenceChanged => {
                let mut brief = app.ws(&w.lab_admin, Codec::Json).await;
                brief.subscribe(case, seen).await;
                drop(brief);
            }
            PanicPoint::Now => {}
        }
        // The actor came back from its log: the next message is the next seq, and the
        // subscriber has every event in order.
        let deadline = Instant::now() + WAIT;
        while app.state.registry.restarts() < restarts + i as u64 + 1 {
            assert!(Instant::now() < deadline, "{point:?}: the handler never panicked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seq = loop {
            match doctor.call(post(case, &format!("after {point:?}"))).await {
                Ok(Some(seq)) => break seq,
                Err(e) if e.code == ErrorCode::Unavailable => continue,
                other => panic!("{point:?}: {other:?}"),
            }
        };
        let got: Vec<u64> = tech.events_until(case, seq).await.iter().map(|e| e.seq).collect();
        assert_eq!(got, (seen + 1..=seq).collect::<Vec<_>>(), "{point:?}");
        seen = seq;
    }
}

async fn retired_case_actors_stop(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        no_rate_limit(s);
        s.case_idle_secs = 2;
    })
    .await;
    let w = app.world().await;
    let before = app.state.registry.alive();
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
            })
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let rss_before = rss();
    let mut cases = Vec::new();
    for i in 0..5000 {
        cases.push(quick_case(&app, w.clinic, w.doctor.user_id, &format!("Case {i}")).await);
    }
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    for (n, chunk) in cases.chunks(500).enumerate() {
        let frames: Vec<(String, ClientBody)> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("r{n}-{i}"), ClientBody::MarkRead(MarkRead { case_id: *c, seq: 1 })))
            .collect();
        ws.send_all(&frames).await;
        let ids: Vec<String> = frames.iter().map(|(i, _)| i.clone()).collect();
        assert!(ws.answers_in_order(&ids).await.iter().all(|(_, r)| r.is_ok()));
    }
    // Every case got an actor (some may already have retired again).
    let peak = app.state.registry.alive();
    assert!(app.state.registry.load_stats().0 >= 5000);
    let rss_peak = rss();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.registry.alive() > before {
        assert!(Instant::now() < deadline, "{} case actors still in memory", app.state.registry.alive());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.state.registry.live_count(), 0);
    let metrics = app.http.get(app.path("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("articula_case_actors"), "the gauge is exported");
    println!(
        "case actors: {before} → {peak} → {}; RSS KiB: {rss_before} → {rss_peak} → {}",
        app.state.registry.alive(),
        rss()
    );
    // And they come back on demand.
    assert!(ws.call(ClientBody::MarkRead(MarkRead { case_id: cases[0], seq: 1 })).await.is_ok());
}

/// Other spellings of `teeth.11.shade` (a zero-padded or signed tooth number, spaces, capitals)
/// would be fields of their own, with their own versions, that the tooth chart never shows:
/// they are refused on every path an Rx field name takes (edit, proposal), and nothing changes.
async fn an_rx_field_has_one_name(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let head = head_of(&app, case).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    let variants = [
        "teeth.011.shade",
        "teeth.+11.shade",
        "teeth.0011.shade",
        " teeth.11.shade",
        "teeth.11.shade ",
        "teeth. 11.shade",
        "Teeth.11.shade",
        "TEETH.11.SHADE",
        "teeth.11.Shade",
        "teeth..11.shade",
        "teeth.\u{FF11}\u{FF11}.shade",
    ];
    let change = |field: &str, base_version: u64| RxChange {
        field: field.into(),
        base_version,
        value: Some("A2".into()),
    };
    let edit = |changes: Vec<RxChange>| ClientBody::EditRx(EditRx { case_id: case, changes });
    let propose =
        |changes: Vec<RxChange>| ClientBody::ProposeRx(ProposeRx { case_id: case, changes, note: None });
    for field in variants {
        let err = doctor.call(edit(vec![change(field, 0)])).await.expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidRx, "edit {field:?}: {err:?}");
        let err = tech.call(propose(vec![change(field, 0)])).await.expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidRx, "proposal {field:?}: {err:?}");
    }
    // With the canonical name beside it, the whole edit is refused.
    let err = doctor
        .call(edit(vec![change("teeth.11.material", 0), change("teeth.011.shade", 0)]))
        .await
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::InvalidRx);
    assert_eq!(head_of(&app, case).await, head, "nothing got a seq");
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.doctor).await;
    assert_eq!(rx["fields"].as_array().map(Vec::len), Some(0), "{rx}");
    assert_eq!(rx["proposals"].as_array().map(Vec::len).unwrap_or(0), 0, "{rx}");

    // The canonical name is accepted, and stays the only field of tooth 11 for its shade.
    let v = doctor.call(edit(vec![change("teeth.11.shade", 0)])).await.unwrap().unwrap();
    for field in ["teeth.011.shade", "teeth.+11.shade"] {
        let err = doctor.call(edit(vec![change(field, v)])).await.expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidRx, "{field:?}");
    }
    let rx = app.get_json(&format!("/api/v1/cases/{case}/rx"), &w.tech).await;
    let fields: Vec<&str> =
        rx["fields"].as_array().unwrap().iter().filter_map(|f| f["field"].as_str()).collect();
    assert_eq!(fields, ["teeth.11.shade"]);
    assert_eq!(head_of(&app, case).await, head + 1);
}
