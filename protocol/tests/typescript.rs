//! The TypeScript types of the wire (`web/src/generated/protocol.ts`) are generated from this
//! crate's types (ts-rs reads the same serde attributes the codecs use), and this test fails when
//! the checked-in file is stale. `ARTICULA_UPDATE_GENERATED=1 cargo test -p articula-protocol
//! --test typescript` (or `make generate`) rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use articula_protocol::*;
use ts_rs::{Config, TS};

macro_rules! decls {
    ($cfg:expr; $($t:ty),+ $(,)?) => {{
        let mut out = Vec::new();
        $( out.push(format!("export {}", <$t as TS>::decl($cfg))); )+
        out
    }};
}

fn generated() -> String {
    // Numbers (seqs, times in ms) fit in a JavaScript number: 2^53 is 285,000 years of ms.
    let cfg = &Config::default().with_large_int("number");
    let decls = decls!(cfg;
        // ids: canonical UUID strings in both codecs
        CaseId, UserId, OrgId, MessageId, FileId, ApprovalId, ProposalId,
        // vocabularies
        Role, OrgKind, Portal, CaseStatus, FileKind, Capability, Decision, ApprovalStatus, ErrorCode,
        // shared shapes
        RxChange, RxFieldValue, CaseSummary, EventData,
        // client frames
        ClientMessage, ClientBody, Empty, Auth, Subscribe, CaseRef, PostMessage, EditMessage, MessageRef,
        MarkRead, EditRx, SignRx, ProposeRx, DecideRxProposal, RequestApproval, DecideApproval, SetStatus,
        UpdateCase, SubscribeBoard,
        // server frames
        ServerMessage, ServerBody, Welcome, Ack, ErrorFrame, Event, TypingFrame, Presence, Receipt, Board,
        Inbox, Resync, Pong,
    );
    let mut s = String::from(
        "// GENERATED from the protocol crate (protocol/tests/typescript.rs) — do not edit.\n\
         // `make generate` rewrites it; `make test` fails when it is stale.\n\n",
    );
    for d in decls {
        s.push_str(&d);
        s.push('\n');
    }
    s
}

#[test]
fn the_checked_in_typescript_types_are_the_generated_ones() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/src/generated/protocol.ts");
    let want = generated();
    if std::env::var_os("ARTICULA_UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "web/src/generated/protocol.ts is stale: run `make generate` (ARTICULA_UPDATE_GENERATED=1 cargo test -p articula-protocol --test typescript) and commit it"
    );
}
