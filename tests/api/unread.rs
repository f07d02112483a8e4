//! Unread counts (`GET /api/v1/unread`) and mentions: messages by others after the caller's read
//! mark, in the cases the caller may see now; mentions counted for the person mentioned and told
//! in their inbox.

use articula_protocol::*;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    unread_counts_follow_messages_read_marks_deletions_and_access,
    mentions_are_counted_for_the_person_mentioned_and_told_in_their_inbox,
);

fn post(case_id: CaseId, text: &str, mentions: Vec<UserId>) -> ClientBody {
    ClientBody::PostMessage(PostMessage {
        case_id,
        text: text.into(),
        attachments: vec![],
        reply_to: None,
        mentions,
    })
}

/// The caller's unread entry for `case`: (unread, mentions, read_seq), or None.
async fn unread_of(app: &TestApp, s: &Session, case: CaseId) -> Option<(u64, u64, u64)> {
    let v: Value = app.get_json("/api/v1/unread", s).await;
    v["cases"].as_array().unwrap().iter().find(|c| c["case_id"] == case.to_string()).map(|c| {
        (c["unread"].as_u64().unwrap(), c["mentions"].as_u64().unwrap(), c["read_seq"].as_u64().unwrap())
    })
}

async fn unread_counts_follow_messages_read_marks_deletions_and_access(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let elsewhere = app.submitted_case(&w.foreign_doctor, "Veneer", w.other_lab).await;
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let mut tech = app.ws(&w.tech, Codec::MsgPack).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        doctor.call(post(case, &format!("note {i}"), vec![])).await.unwrap();
    }
    let head = doctor.subscribe(case, 0).await;
    for e in doctor.events_until(case, head).await {
        if let EventData::MessagePosted { message_id, .. } = e.data {
            ids.push(message_id);
        }
    }
    assert_eq!(ids.len(), 3);
    // The technician has not read any of them; the doctor wrote them, so none is unread for her.
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((3, 0, 0)));
    assert_eq!(unread_of(&app, &w.doctor, case).await, None);
    // People who may not see the case get nothing of it, the same answer as no messages at all.
    for s in [&w.doctor2, &w.foreign_tech, &w.foreign_doctor] {
        assert_eq!(unread_of(&app, s, case).await, None);
    }
    // The lab's own message counts for the doctor, not for the lab.
    let t = tech.call(post(case, "received", vec![])).await.unwrap().unwrap();
    assert_eq!(unread_of(&app, &w.doctor, case).await, Some((1, 0, 0)));
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((3, 0, 0)));
    // A deleted message no longer counts.
    doctor.call(ClientBody::DeleteMessage(MessageRef { case_id: case, message_id: ids[1] })).await.unwrap();
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((2, 0, 0)));
    // Reading up to a message counts only what came after it.
    tech.call(ClientBody::MarkRead(MarkRead { case_id: case, seq: t })).await.unwrap();
    assert_eq!(unread_of(&app, &w.tech, case).await, None);
    let after = doctor.call(post(case, "one more", vec![])).await.unwrap().unwrap();
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((1, 0, t)));
    tech.call(ClientBody::MarkRead(MarkRead { case_id: case, seq: after })).await.unwrap();
    assert_eq!(unread_of(&app, &w.tech, case).await, None);
    // The other organisation's case is unread for its own lab only.
    let mut foreign = app.ws(&w.foreign_doctor, Codec::Json).await;
    foreign.call(post(elsewhere, "hello", vec![])).await.unwrap();
    assert_eq!(unread_of(&app, &w.foreign_tech, elsewhere).await, Some((1, 0, 0)));
    assert_eq!(unread_of(&app, &w.tech, elsewhere).await, None);
    // Signed-out callers get nothing.
    assert_eq!(app.http.get(app.path("/api/v1/unread")).send().await.unwrap().status(), 401);
}

async fn mentions_are_counted_for_the_person_mentioned_and_told_in_their_inbox(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;
    tech.call(ClientBody::SubscribeInbox(Empty {})).await.unwrap();
    let mut admin = app.ws(&w.lab_admin, Codec::MsgPack).await;
    admin.call(ClientBody::SubscribeInbox(Empty {})).await.unwrap();
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    // Named twice: counted once.
    let seq = doctor
        .call(post(case, "@Tech please check 11", vec![w.tech.user_id, w.tech.user_id]))
        .await
        .unwrap()
        .unwrap();
    doctor.call(post(case, "and the shade", vec![])).await.unwrap();
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((2, 1, 0)));
    assert_eq!(unread_of(&app, &w.lab_admin, case).await, Some((2, 0, 0)));
    // The inbox says whom the message mentions (ids only: the text stays in the case).
    let item = |f: &ServerBody| matches!(f, ServerBody::Inbox(i) if i.seq == seq);
    for ws in [&mut tech, &mut admin] {
        let ServerBody::Inbox(i) = ws.wait_for(item).await else { unreachable!() };
        assert_eq!(i.mentions, vec![w.tech.user_id]);
        assert_eq!(i.kind, "message_posted");
    }
    // The message keeps them: the event and the REST history.
    let head = tech.subscribe(case, 0).await;
    let events = tech.events_until(case, head).await;
    let posted = events.iter().find(|e| e.seq == seq).unwrap();
    assert!(
        matches!(&posted.data, EventData::MessagePosted { mentions, .. } if mentions == &vec![w.tech.user_id])
    );
    let msgs: Value = app.get_json(&format!("/api/v1/cases/{case}/messages"), &w.tech).await;
    let listed = msgs.as_array().unwrap().iter().find(|m| m["seq"] == seq).unwrap();
    assert_eq!(listed["mentions"], serde_json::json!([w.tech.user_id.to_string()]));
    // More than 20 people: refused, nothing written.
    let many: Vec<UserId> = (0..21).map(|_| UserId::new()).collect();
    let err = doctor.call(post(case, "everyone", many)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
    assert_eq!(unread_of(&app, &w.tech, case).await, Some((2, 1, 0)));
}
