//! Golden frames: one example of every client and server frame (and every event kind), pinned
//! byte for byte in both codecs. Run with `UPDATE_GOLDEN=1` to rewrite the files after an
//! intended, additive change — and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use articula_protocol::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use uuid::Uuid;

fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0000 | n))
}

fn client_examples() -> Vec<(&'static str, ClientMessage)> {
    let case: CaseId = id(1);
    let c = |name, body| (name, ClientMessage::new("c-1", body));
    vec![
        c("auth", ClientBody::Auth(Auth { token: "at_example".into() })),
        c("subscribe", ClientBody::Subscribe(Subscribe { case_id: case, since: Some(41) })),
        c("unsubscribe", ClientBody::Unsubscribe(CaseRef { case_id: case })),
        c(
            "post_message",
            ClientBody::PostMessage(PostMessage {
                case_id: case,
                text: "Shade A2 confirmed, see photo".into(),
                attachments: vec![id(7)],
                reply_to: None,
                mentions: vec![],
            }),
        ),
        c(
            "edit_message",
            ClientBody::EditMessage(EditMessage {
                case_id: case,
                message_id: id(3),
                text: "Shade A3 confirmed".into(),
            }),
        ),
        c("delete_message", ClientBody::DeleteMessage(MessageRef { case_id: case, message_id: id(3) })),
        c("mark_read", ClientBody::MarkRead(MarkRead { case_id: case, seq: 42 })),
        c("typing", ClientBody::Typing(CaseRef { case_id: case })),
        c(
            "edit_rx",
            ClientBody::EditRx(EditRx {
                case_id: case,
                changes: vec![
                    RxChange {
                        field: "teeth.11.restoration".into(),
                        base_version: 0,
                        value: Some("crown".into()),
                    },
                    RxChange { field: "teeth.11.shade".into(), base_version: 12, value: Some("A2".into()) },
                ],
            }),
        ),
        c("sign_rx", ClientBody::SignRx(SignRx { case_id: case, rx_version: 43 })),
        c(
            "propose_rx",
            ClientBody::ProposeRx(ProposeRx {
                case_id: case,
                changes: vec![RxChange {
                    field: "teeth.11.material".into(),
                    base_version: 12,
                    value: Some("lithium_disilicate".into()),
                }],
                note: Some("Zirconia too opaque for this shade".into()),
            }),
        ),
        c(
            "decide_rx_proposal",
            ClientBody::DecideRxProposal(DecideRxProposal {
                case_id: case,
                proposal_id: id(5),
                accept: true,
                comment: None,
            }),
        ),
        c(
            "request_approval",
            ClientBody::RequestApproval(RequestApproval {
                case_id: case,
                file_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                comment: Some("Design v1".into()),
            }),
        ),
        c(
            "decide_approval",
            ClientBody::DecideApproval(DecideApproval {
                case_id: case,
                approval_id: id(6),
                decision: Decision::Approve,
                comment: Some("Looks good".into()),
            }),
        ),
        c(
            "set_status",
            ClientBody::SetStatus(SetStatus {
                case_id: case,
                status: CaseStatus::InProduction,
                reason: None,
            }),
        ),
        c(
            "update_case",
            ClientBody::UpdateCase(UpdateCase {
                case_id: case,
                label: None,
                due_date: Some(Some("2026-12-01".into())),
                lab_id: Some(Some(id(9))),
            }),
        ),
        c("subscribe_board", ClientBody::SubscribeBoard(SubscribeBoard { org_id: None })),
        c("unsubscribe_board", ClientBody::UnsubscribeBoard(Empty {})),
        c("subscribe_inbox", ClientBody::SubscribeInbox(Empty {})),
        c("ping", ClientBody::Ping(Empty {})),
    ]
}

fn event(seq: u64, data: EventData) -> ServerMessage {
    ServerBody::Event(Event { case_id: id(1), seq, at: 1_790_000_000_000, actor: id(2), data }).into()
}

fn event_examples() -> Vec<(&'static str, ServerMessage)> {
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string();
    vec![
        (
            "case_created",
            event(
                1,
                EventData::CaseCreated {
                    label: "Crown 11".into(),
                    clinic_id: id(8),
                    doctor_id: id(2),
                    lab_id: None,
                    due_date: Some("2026-12-01".into()),
                },
            ),
        ),
        (
            "case_updated",
            event(2, EventData::CaseUpdated { label: None, due_date: Some(None), lab_id: Some(Some(id(9))) }),
        ),
        (
            "status_changed",
            event(
                3,
                EventData::StatusChanged { from: CaseStatus::Draft, to: CaseStatus::Submitted, reason: None },
            ),
        ),
        (
            "message_posted",
            event(
                4,
                EventData::MessagePosted {
                    message_id: id(3),
                    text: "Shade A2 confirmed".into(),
                    attachments: vec![],
                    reply_to: None,
                    mentions: vec![],
                },
            ),
        ),
        ("message_edited", event(5, EventData::MessageEdited { message_id: id(3), text: "Shade A3".into() })),
        ("message_deleted", event(6, EventData::MessageDeleted { message_id: id(3) })),
        (
            "rx_edited",
            event(
                7,
                EventData::RxEdited {
                    changes: vec![RxFieldValue { field: "teeth.11.shade".into(), value: Some("A2".into()) }],
                    voided_approvals: vec![id(6)],
                },
            ),
        ),
        ("rx_signed", event(8, EventData::RxSigned { rx_version: 7 })),
        (
            "rx_proposed",
            event(
                9,
                EventData::RxProposed {
                    proposal_id: id(5),
                    changes: vec![RxChange {
                        field: "teeth.11.material".into(),
                        base_version: 7,
                        value: Some("zirconia".into()),
                    }],
                    note: None,
                },
            ),
        ),
        (
            "rx_proposal_decided",
            event(
                10,
                EventData::RxProposalDecided {
                    proposal_id: id(5),
                    accepted: true,
                    comment: None,
                    applied: vec![RxFieldValue {
                        field: "teeth.11.material".into(),
                        value: Some("zirconia".into()),
                    }],
                    voided_approvals: vec![],
                },
            ),
        ),
        (
            "approval_requested",
            event(
                11,
                EventData::ApprovalRequested {
                    approval_id: id(6),
                    file_id: id(7),
                    file_sha256: sha.clone(),
                    rx_version: 10,
                    comment: None,
                },
            ),
        ),
        (
            "approval_decided",
            event(
                12,
                EventData::ApprovalDecided {
                    approval_id: id(6),
                    decision: Decision::Reject,
                    comment: Some("Margin too short".into()),
                },
            ),
        ),
        (
            "file_added",
            event(
                13,
                EventData::FileAdded {
                    file_id: id(7),
                    name: "crown_11.stl".into(),
                    size: 684_084,
                    content_type: "model/stl".into(),
                    sha256: sha,
                    file_kind: FileKind::Design,
                    voided_approvals: vec![],
                },
            ),
        ),
        (
            "voice_transcribed",
            event(
                14,
                EventData::VoiceTranscribed {
                    file_id: id(10),
                    text: "Please make the contact a bit tighter".into(),
                },
            ),
        ),
        (
            "grant_given",
            event(
                15,
                EventData::GrantGiven {
                    user_id: id(11),
                    capabilities: vec![Capability::View, Capability::Chat],
                    until: Some(1_790_600_000_000),
                    support: false,
                },
            ),
        ),
        ("grant_revoked", event(16, EventData::GrantRevoked { user_id: id(11) })),
        ("grant_expired", event(17, EventData::GrantExpired { user_id: id(11) })),
    ]
}

fn server_examples() -> Vec<(&'static str, ServerMessage)> {
    let summary = CaseSummary {
        case_id: id(1),
        label: "Crown 11".into(),
        status: CaseStatus::InDesign,
        due_date: Some("2026-12-01".into()),
        at_risk: true,
        days_needed: Some(4),
        days_left: Some(2),
        last_activity: 1_790_000_000_000,
        doctor_id: id(2),
        clinic_id: id(8),
        lab_id: Some(id(9)),
        seq: 42,
    };
    let s = |name, body: ServerBody| (name, ServerMessage::from(body));
    vec![
        s(
            "welcome",
            ServerBody::Welcome(Welcome { user_id: id(2), heartbeat_secs: 15, max_frame_bytes: 65536 }),
        ),
        s("ack", ServerBody::Ack(Ack { id: "c-1".into(), seq: Some(42) })),
        s(
            "error",
            ServerBody::Error(ErrorFrame {
                id: Some("c-1".into()),
                code: ErrorCode::RxConflict,
                message: "teeth.11.shade changed since version 12".into(),
                details: Some(serde_json::json!({"field": "teeth.11.shade", "value": "A3", "version": 40})),
            }),
        ),
        s("typing", ServerBody::Typing(TypingFrame { case_id: id(1), user_id: id(2) })),
        s("presence", ServerBody::Presence(Presence { case_id: id(1), users: vec![id(2), id(4)] })),
        s("receipt", ServerBody::Receipt(Receipt { case_id: id(1), user_id: id(4), seq: 42 })),
        s(
            "board",
            ServerBody::Board(Board { org_id: id(8), snapshot: true, cases: vec![summary], removed: vec![] }),
        ),
        s(
            "inbox",
            ServerBody::Inbox(Inbox {
                case_id: id(1),
                label: "Crown 11".into(),
                seq: 42,
                kind: "message_posted".into(),
                actor: id(4),
                at: 1_790_000_000_000,
                mentions: vec![],
            }),
        ),
        s(
            "resync",
            ServerBody::Resync(Resync { case_id: Some(id(1)), reason: "lagged".into(), last_seq: Some(41) }),
        ),
        s("pong", ServerBody::Pong(Pong { id: Some("c-1".into()) })),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join("") + "\n"
}

/// Compares (or, with UPDATE_GOLDEN=1, writes) the pinned bytes of one frame in both codecs.
fn pin(name: &str, json: Vec<u8>, msgpack: Vec<u8>) -> Result<(), String> {
    let json_path = golden_dir().join(format!("{name}.json"));
    let mp_path = golden_dir().join(format!("{name}.msgpack.hex"));
    let pretty = {
        let v: serde_json::Value = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n"
    };
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&json_path, &pretty).map_err(|e| e.to_string())?;
        std::fs::write(&mp_path, to_hex(&msgpack)).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want_json = std::fs::read_to_string(&json_path).map_err(|e| format!("{name}: {e}"))?;
    let want_mp = std::fs::read_to_string(&mp_path).map_err(|e| format!("{name}: {e}"))?;
    if want_json != pretty {
        return Err(format!("{name}.json differs:\n--- pinned\n{want_json}--- now\n{pretty}"));
    }
    if want_mp != to_hex(&msgpack) {
        return Err(format!("{name}.msgpack.hex differs"));
    }
    Ok(())
}

/// The MessagePack form has the JSON form's shape exactly: the same maps, strings and numbers
/// (ids as the same strings), and no binary value anywhere. Catches any type whose serde output
/// depends on `is_human_readable()` (as `uuid::Uuid`'s does).
fn same_shape(name: &str, json: &[u8], msgpack: &[u8]) {
    fn no_bin(v: &rmpv::Value, at: &str) -> Result<(), String> {
        match v {
            rmpv::Value::Binary(b) => Err(format!("{at} is a {}-byte bin", b.len())),
            rmpv::Value::Ext(..) => Err(format!("{at} is an ext value")),
            rmpv::Value::Array(items) => {
                items.iter().enumerate().try_for_each(|(i, x)| no_bin(x, &format!("{at}[{i}]")))
            }
            rmpv::Value::Map(entries) => entries.iter().try_for_each(|(k, x)| {
                let key = k.as_str().ok_or_else(|| format!("{at}: a key that is not a string"))?;
                no_bin(x, &format!("{at}.{key}"))
            }),
            _ => Ok(()),
        }
    }
    let value = rmpv::decode::read_value(&mut &msgpack[..]).expect("msgpack");
    no_bin(&value, "frame").unwrap_or_else(|e| panic!("{name}: {e}"));
    let from_mp = serde_json::to_value(&value).expect("msgpack as JSON");
    let from_json: serde_json::Value = serde_json::from_slice(json).expect("json");
    assert_eq!(from_mp, from_json, "{name}: the MessagePack and JSON forms differ");
}

#[test]
fn client_frames_are_pinned_and_round_trip_in_both_codecs() {
    let examples = client_examples();
    let names: BTreeSet<_> = examples.iter().map(|(n, _)| *n).collect();
    let types: BTreeSet<_> = ClientBody::TYPES.iter().copied().collect();
    assert_eq!(names, types, "every client frame type needs a golden example");
    for (name, msg) in examples {
        assert_eq!(msg.body.type_name(), name);
        let json = Codec::Json.encode_client(&msg).expect("encode json");
        let mp = Codec::MsgPack.encode_client(&msg).expect("encode msgpack");
        // The server's strict decoder reads what clients encode, in both codecs.
        assert_eq!(Codec::Json.decode_client(&json).as_ref(), Ok(&msg), "{name} json");
        assert_eq!(Codec::MsgPack.decode_client(&mp).as_ref(), Ok(&msg), "{name} msgpack");
        same_shape(name, &json, &mp);
        pin(&format!("client.{name}"), json, mp).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn server_frames_and_events_are_pinned_and_round_trip_in_both_codecs() {
    let examples = server_examples();
    let mut names: BTreeSet<_> = examples.iter().map(|(n, _)| *n).collect();
    names.insert("event");
    let types: BTreeSet<_> = ServerBody::TYPES.iter().copied().collect();
    assert_eq!(names, types, "every server frame type needs a golden example");
    for (name, msg) in examples.into_iter().chain(event_examples().into_iter().map(|(k, m)| {
        if let ServerBody::Event(e) = &m.body {
            assert_eq!(e.data.kind(), k);
        }
        (k, m)
    })) {
        let json = Codec::Json.encode_server(&msg).expect("encode json");
        let mp = Codec::MsgPack.encode_server(&msg).expect("encode msgpack");
        assert_eq!(Codec::Json.decode_server(&json).as_ref(), Ok(&msg), "{name} json");
        assert_eq!(Codec::MsgPack.decode_server(&mp).as_ref(), Ok(&msg), "{name} msgpack");
        same_shape(name, &json, &mp);
        let prefix = if matches!(msg.body, ServerBody::Event(_)) { "event" } else { "server" };
        pin(&format!("{prefix}.{name}"), json, mp).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn readme_documents_every_frame_type_and_event_kind() {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("protocol/README.md");
    let kinds = event_examples().into_iter().map(|(k, _)| k);
    for name in ClientBody::TYPES.iter().chain(ServerBody::TYPES).copied().chain(kinds) {
        assert!(readme.contains(&format!("### `{name}`")), "README lacks a section for `{name}`");
    }
    for code in <ErrorCode as strum::IntoEnumIterator>::iter() {
        assert!(readme.contains(&format!("`{}`", code.as_str())), "README lacks error code `{code}`");
    }
}
