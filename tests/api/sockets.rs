//! What keeps sockets and case actors in check: the per-user command rate limit, the heartbeat
//! that closes a silent peer, the inbox of activity by others, and case actors that stop when
//! nobody uses them and come back from durable state.

use std::time::{Duration, Instant};

use articula_protocol::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    commands_beyond_the_rate_limit_are_refused_per_user,
    a_silent_peer_is_closed_after_missed_heartbeats,
    the_inbox_shows_activity_by_others_in_visible_cases,
    an_idle_case_actor_stops_and_comes_back_from_the_log,
);

async fn commands_beyond_the_rate_limit_are_refused_per_user(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| {
        s.ws_commands_per_second = 1;
        s.ws_command_burst = 3;
    })
    .await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut phone = app.ws(&w.doctor, Codec::Json).await;
    let mut desk = app.ws(&w.doctor, Codec::MsgPack).await;
    let mut tech = app.ws(&w.tech, Codec::Json).await;

    let ids: Vec<String> = (0..5).map(|_| phone.new_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        phone.send_with_id(id, post(case, &format!("m{i}"))).await;
    }
    // Sent at once too, before any answer (a token comes back only after a second).
    let desk_id = desk.new_id();
    desk.send_with_id(&desk_id, post(case, "desk")).await;
    // Six commands of one user on two sockets, all at once: the burst of three goes through, the
    // rest are refused, whichever socket they came from (the limit is the user's, not the
    // socket's: per socket, the desk would have had a burst of its own).
    let mut answers = Vec::new();
    for id in &ids {
        answers.push(phone.answer(id).await.map(|_| ()).map_err(|e| e.code));
    }
    answers.push(desk.answer(&desk_id).await.map(|_| ()).map_err(|e| e.code));
    let passed = answers.iter().filter(|a| a.is_ok()).count();
    let limited = answers.iter().filter(|a| **a == Err(ErrorCode::RateLimited)).count();
    assert_eq!((passed, limited), (3, 3), "{answers:?}");
    // Refused commands changed nothing, and the socket is still usable.
    let msgs = app.get_json(&format!("/api/v1/cases/{case}/messages"), &w.doctor).await;
    assert_eq!(msgs.as_array().unwrap().len(), 3, "{msgs}");
    let id = phone.new_id();
    phone.send_with_id(&id, ClientBody::Ping(Empty {})).await;
    let pong = phone.wait_for(|f| matches!(f, ServerBody::Pong(p) if p.id.as_deref() == Some(&id))).await;
    assert!(matches!(pong, ServerBody::Pong(_)));
    assert_eq!(phone.closed, None);
    // Other users have their own budget.
    tech.call(post(case, "from the lab")).await.unwrap();
}

/// Opens a WebSocket by hand over TLS and never answers anything, like a phone that lost its
/// network without closing the connection. Returns every byte the server sends until it closes.
async fn silent_peer(app: &TestApp, token: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(app.tls_config());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: articula.v1+json\r\nAuthorization: Bearer {token}\r\n\r\n",
        app.port
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut got))
        .await
        .expect("the server never closed the silent socket")
        .ok();
    got
}

async fn a_silent_peer_is_closed_after_missed_heartbeats(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| s.ws_heartbeat_secs = 1).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // A live client on the same server, for the same time: it reads, so tungstenite answers the
    // server's pings.
    let mut live = app.ws(&w.tech, Codec::Json).await;
    live.subscribe(case, 0).await;
    let started = Instant::now();
    let silent = silent_peer(&app, &w.doctor.access);
    tokio::pin!(silent);
    let got = loop {
        tokio::select! {
            got = &mut silent => break got,
            f = live.recv() => assert!(f.is_some(), "the live client was closed too"),
        }
    };
    let waited = started.elapsed();
    assert!(got.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&got));
    let frames = &got[got.windows(4).position(|x| x == b"\r\n\r\n").unwrap() + 4..];
    // Pings went unanswered; then came a close frame with 1001 (going away).
    let ping = frames.windows(2).position(|x| x == [0x89, 0x00]).expect("no ping");
    let close = frames.windows(4).position(|x| x[0] == 0x88 && x[2..4] == [0x03, 0xE9]);
    assert!(close.is_some_and(|c| c > ping), "no close 1001 after a ping in {frames:?}");
    // Three heartbeats without an answer, not the first one.
    assert!(waited >= Duration::from_secs(3), "closed after {waited:?}");
    // The client that answered the same pings is still served.
    let mut doctor = app.ws(&w.doctor, Codec::Json).await;
    let seq = doctor.call(post(case, "still there?")).await.unwrap().unwrap();
    assert_eq!(live.event(case, seq).await.seq, seq);
    assert_eq!(live.closed, None);
}

fn inbox_item(f: &ServerBody) -> Option<&Inbox> {
    match f {
        ServerBody::Inbox(i) => Some(i),
        _ => None,
    }
}

async fn the_inbox_shows_activity_by_others_in_visible_cases(app: TestApp) {
    let w = app.world().await;
    let mine = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let colleagues = app.submitted_case(&w.doctor2, "Bridge 24-26", w.lab).await;
    let elsewhere = app.submitted_case(&w.foreign_doctor, "Veneer", w.other_lab).await;
    let mut sockets = Vec::new();
    for s in [&w.doctor, &w.doctor2, &w.admin, &w.tech, &w.foreign_tech] {
        let mut ws = app.ws(s, Codec::Json).await;
        ws.call(ClientBody::SubscribeInbox(Empty {})).await.unwrap();
        sockets.push(ws);
    }
    let [doctor, doctor2, admin, tech, foreign_tech] = &mut sockets[..] else { unreachable!() };

    let mut lab = app.ws(&w.tech, Codec::MsgPack).await;
    let s1 = lab.call(post(mine, "margin looks short on 11")).await.unwrap().unwrap();
    let s2 = lab.call(post(colleagues, "pontic shade?")).await.unwrap().unwrap();
    let mut other_lab = app.ws(&w.foreign_tech, Codec::Json).await;
    other_lab.call(post(elsewhere, "received")).await.unwrap();
    let d = doctor.call(post(mine, "I'll rescan")).await.unwrap().unwrap();

    // Each doctor hears of their own cases only; items of one organisation arrive in order, so
    // the colleague's item arriving first means nothing of the other case is still coming.
    let first = doctor.wait_for(|f| inbox_item(f).is_some()).await;
    let first = inbox_item(&first).unwrap();
    assert_eq!((first.case_id, first.seq, first.label.as_str()), (mine, s1, "Crown 11"));
    assert_eq!((first.kind.as_str(), first.actor), ("message_posted", w.tech.user_id));
    // The doctor's next item is the lab's reply below, not the colleague's case.
    let item = doctor2.wait_for(|f| inbox_item(f).is_some()).await;
    assert_eq!(inbox_item(&item).map(|i| (i.case_id, i.seq)), Some((colleagues, s2)));
    // The clinic admin sees every case of the clinic, including the doctor's reply.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let f = admin.wait_for(|f| inbox_item(f).is_some()).await;
        let i = inbox_item(&f).unwrap();
        seen.push((i.case_id, i.seq));
    }
    assert_eq!(seen, [(mine, s1), (colleagues, s2), (mine, d)]);
    // The technician does not hear of their own messages, only of the doctor's.
    let f = tech.wait_for(|f| inbox_item(f).is_some()).await;
    assert_eq!(inbox_item(&f).map(|i| (i.case_id, i.seq, i.actor)), Some((mine, d, w.doctor.user_id)));
    // The other lab hears nothing of this lab's cases: the only item it can have is the doctor's
    // answer on its own case, posted last.
    let reply = app.ws(&w.foreign_doctor, Codec::Json).await.call(post(elsewhere, "thanks")).await;
    let reply = reply.unwrap().unwrap();
    let f = foreign_tech.wait_for(|f| inbox_item(f).is_some()).await;
    assert_eq!(inbox_item(&f).map(|i| (i.case_id, i.seq)), Some((elsewhere, reply)));
    // And the doctor's inbox, after the crown's first item: the lab's next message on the crown,
    // nothing of the colleague's bridge in between.
    let next = lab.call(post(mine, "rescan received")).await.unwrap().unwrap();
    let f = doctor.wait_for(|f| inbox_item(f).is_some()).await;
    assert_eq!(inbox_item(&f).map(|i| (i.case_id, i.seq)), Some((mine, next)));
}

async fn an_idle_case_actor_stops_and_comes_back_from_the_log(app: TestApp) {
    let app = spawn_app_with(app.backend, |s| s.case_idle_secs = 1).await;
    let w = app.world().await;
    let quiet = app.submitted_case(&w.doctor, "Quiet", w.lab).await;
    let watched = app.submitted_case(&w.doctor, "Watched", w.lab).await;
    let mut ws = app.ws(&w.doctor, Codec::Json).await;
    ws.subscribe(watched, 0).await;
    let mut last = 0;
    for i in 0..3 {
        last = ws.call(post(quiet, &format!("note {i}"))).await.unwrap().unwrap();
    }
    assert!(app.state.registry.is_live(quiet));

    // Nobody subscribed and nothing in flight: the quiet case's actor retires.
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.state.registry.is_live(quiet) {
        assert!(Instant::now() < deadline, "the idle case actor never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A case someone is watching stays, however long nothing happens in it.
    assert!(app.state.registry.is_live(watched));

    // The next command starts a new actor from durable state: the log continues without a gap.
    let next = ws.call(post(quiet, "back again")).await.unwrap().unwrap();
    assert_eq!(next, last + 1);
    let mut fresh = app.ws(&w.tech, Codec::MsgPack).await;
    assert_eq!(fresh.subscribe(quiet, 0).await, next);
    let seqs: Vec<u64> = fresh.events_until(quiet, next).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=next).collect::<Vec<_>>());
}
