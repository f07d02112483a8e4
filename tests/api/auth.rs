//! Sign-in, sessions, tokens, lockout, portals, cookies and CSRF.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use articula_protocol::{Codec, OrgKind, Role};

both_backends!(
    portals_are_separate,
    five_failures_lock_the_account,
    unknown_emails_lock_like_real_ones,
    refresh_rotates_and_reuse_revokes_the_session,
    sessions_are_listed_and_ended,
    inactivity_and_expiry_end_access,
    cookies_need_csrf_for_changes,
    a_refused_cookie_refresh_clears_the_cookies,
    bad_and_forged_tokens_are_refused,
    invitations_set_a_password_once,
);

crate::both_backends_with!(
    busy_server;
    sign_ins_and_refreshes_wait_for_the_writer_while_chat_runs,
);

async fn portals_are_separate(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    let lab = app.org("L", OrgKind::Lab).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    app.user("tech@t.test", lab, Role::LabTech).await;

    let res = app.login_raw("tech@t.test", PASSWORD, "clinic").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "wrong_portal");
    let res = app.login_raw("doc@t.test", PASSWORD, "lab").await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "wrong_portal");
    // The right portal works; a wrong password on the wrong portal says nothing about the portal.
    assert_eq!(app.login_raw("tech@t.test", PASSWORD, "lab").await.status(), StatusCode::OK);
    let res = app.login_raw("tech@t.test", "not the password", "clinic").await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_credentials");
}

async fn five_failures_lock_the_account(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    for i in 1..=5 {
        let res = app.login_raw("doc@t.test", "wrong password!", "clinic").await;
        let body: Value = res.json().await.unwrap();
        let want = if i < 5 { "invalid_credentials" } else { "account_locked" };
        assert_eq!(body["error"], want, "attempt {i}");
    }
    // Locked: even the right password is refused.
    let res = app.login_raw("doc@t.test", PASSWORD, "clinic").await;
    assert_eq!(res.status(), StatusCode::LOCKED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "account_locked");
    // When the lock time has passed, the right password works again and the count restarts.
    app.sql("UPDATE users SET locked_until = 1 WHERE email = 'doc@t.test'").await;
    assert_eq!(app.login_raw("doc@t.test", PASSWORD, "clinic").await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT failed_logins FROM users WHERE email = 'doc@t.test'").await, 0);
}

async fn unknown_emails_lock_like_real_ones(app: TestApp) {
    for i in 1..=5 {
        let body: Value =
            app.login_raw("nobody@t.test", "whatever pass", "clinic").await.json().await.unwrap();
        let want = if i < 5 { "invalid_credentials" } else { "account_locked" };
        assert_eq!(body["error"], want, "attempt {i}");
    }
}

async fn refresh_rotates_and_reuse_revokes_the_session(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let s = app.login("doc@t.test", "clinic").await;

    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": s.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let new_access = v["access_token"].as_str().unwrap().to_owned();
    let new_refresh = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, s.refresh);
    let fresh = Session { access: new_access.clone(), refresh: new_refresh.clone(), ..s.clone() };
    assert_eq!(app.get("/api/v1/me", &fresh).await.status(), StatusCode::OK);

    // The spent refresh token, presented again: reuse is detected and the whole family ends.
    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": s.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "token_reused");
    let res = app.get("/api/v1/me", &fresh).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "session_revoked");
    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": new_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn sessions_are_listed_and_ended(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let phone = app.login("doc@t.test", "clinic").await;
    let laptop = app.login("doc@t.test", "clinic").await;
    let third = app.login("doc@t.test", "clinic").await;

    let list = app.get_json("/api/v1/auth/sessions", &laptop).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(list.iter().all(|s| s["ip"] == "127.0.0.1" && s["device"].is_string()));

    // End the phone's session from the laptop: only the phone is signed out.
    let res = app
        .http
        .delete(app.path(&format!("/api/v1/auth/sessions/{}", phone.session_id)))
        .bearer_auth(&laptop.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/v1/me", &phone).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "session_revoked");
    assert_eq!(app.get("/api/v1/me", &third).await.status(), StatusCode::OK);
    let remaining = app.get_json("/api/v1/auth/sessions", &laptop).await;
    assert_eq!(remaining.as_array().unwrap().len(), 2);

    // Log out every device: all tokens stop working.
    let res = app.post("/api/v1/auth/logout-all", &laptop, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    for s in [&phone, &laptop, &third] {
        assert_eq!(app.get("/api/v1/me", s).await.status(), StatusCode::UNAUTHORIZED);
    }
    // A stranger's session id is not found.
    let other = app.login("doc@t.test", "clinic").await;
    let res = app
        .http
        .delete(app.path(&format!("/api/v1/auth/sessions/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn inactivity_and_expiry_end_access(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let s = app.login("doc@t.test", "clinic").await;
    let s2 = app.login("doc@t.test", "clinic").await;

    // An access token past its 15 minutes.
    app.sql(&format!(
        "UPDATE tokens SET expires_at = 1 WHERE kind = 'access' AND session_id IN (SELECT id FROM sessions WHERE id = (SELECT session_id FROM tokens WHERE hash = '{}'))",
        articula::auth::tokens::hash_token(&s.access)
    ))
    .await;
    let res = app.get("/api/v1/me", &s).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "token_expired");

    // A session unused for longer than the inactivity limit.
    app.sql(&format!(
        "UPDATE sessions SET last_used_at = 1 WHERE id = (SELECT session_id FROM tokens WHERE hash = '{}')",
        articula::auth::tokens::hash_token(&s2.access)
    ))
    .await;
    let res = app.get("/api/v1/me", &s2).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "session_revoked");
    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": s2.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn cookies_need_csrf_for_changes(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let browser = client(&app.cert_pem, true);
    let res = browser
        .post(app.path("/api/v1/auth/login"))
        .json(&json!({"email": "doc@t.test", "password": PASSWORD, "portal": "clinic", "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: Vec<String> =
        res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let access = cookies.iter().find(|c| c.starts_with("__Host-articula_at=")).expect("access cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(access.contains(attr), "{access} lacks {attr}");
    }
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("__Host-articula_csrf=")).expect("csrf cookie");
    assert!(!csrf_cookie.contains("HttpOnly"));
    let body: Value = res.json().await.unwrap();
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "cookie mode leaks tokens"
    );
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    assert_eq!(browser.get(app.path("/api/v1/me")).send().await.unwrap().status(), StatusCode::OK);
    // A state-changing request without the CSRF header is refused and changes nothing.
    let res = browser.post(app.path("/api/v1/cases")).json(&json!({"label": "X"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "csrf_failed");
    let res = browser
        .post(app.path("/api/v1/cases"))
        .header("x-csrf-token", "forged")
        .json(&json!({"label": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);
    let res = browser
        .post(app.path("/api/v1/cases"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"label": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // Refresh by cookie (needs the CSRF header too), then logout clears the cookies.
    let res = browser.post(app.path("/api/v1/auth/refresh")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res =
        browser.post(app.path("/api/v1/auth/refresh")).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.json::<Value>().await.unwrap().get("access_token").is_none());
    let res =
        browser.post(app.path("/api/v1/auth/logout")).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(browser.get(app.path("/api/v1/me")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// A browser whose session ended without its cookies being cleared (the sign-out's answer was
/// lost: the page navigated away when its socket closed first) loses them at its next refresh.
async fn a_refused_cookie_refresh_clears_the_cookies(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let browser = client(&app.cert_pem, true);
    let res = browser
        .post(app.path("/api/v1/auth/login"))
        .json(&json!({"email": "doc@t.test", "password": PASSWORD, "portal": "clinic", "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    // The session ends elsewhere; the browser still holds its cookies.
    let other = app.login("doc@t.test", "clinic").await;
    assert_eq!(app.post("/api/v1/auth/logout-all", &other, json!({})).await.status(), StatusCode::OK);
    let res =
        browser.post(app.path("/api/v1/auth/refresh")).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let cleared: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|c| c.contains("Max-Age=0"))
        .collect();
    for name in ["__Host-articula_at=", "__Secure-articula_rt=", "__Host-articula_csrf="] {
        assert!(cleared.iter().any(|c| c.starts_with(name)), "{name} not cleared: {cleared:?}");
    }
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "session_revoked");
    // A refresh with a token in the body (an API client) has no cookies to clear.
    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": other.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("set-cookie").is_none());
}

async fn bad_and_forged_tokens_are_refused(app: TestApp) {
    let fake = Session {
        user_id: articula_protocol::UserId::new(),
        session_id: String::new(),
        email: String::new(),
        access: "at_forgedforgedforgedforgedforgedforgedforge".into(),
        refresh: String::new(),
        csrf: String::new(),
    };
    let res = app.get("/api/v1/me", &fake).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "token_invalid");
    let res = app.http.get(app.path("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "unauthorized");
    let res = app
        .http
        .post(app.path("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": "rt_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "token_invalid");
    // A refresh token is not an access token.
    let clinic = app.org("C", OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, Role::Doctor).await;
    let s = app.login("doc@t.test", "clinic").await;
    let swapped = Session { access: s.refresh.clone(), ..s.clone() };
    assert_eq!(app.get("/api/v1/me", &swapped).await.status(), StatusCode::UNAUTHORIZED);
    // Tokens are stored hashed: the clear token is nowhere in the database.
    let n = app.count(&format!("SELECT COUNT(*) FROM tokens WHERE hash = '{}'", s.access)).await;
    assert_eq!(n, 0);
}

async fn invitations_set_a_password_once(app: TestApp) {
    let clinic = app.org("C", OrgKind::Clinic).await;
    let now = articula_actors::clock::now_ms();
    let id = app
        .state
        .db
        .create_user("new@t.test", "New", None, articula::store::users::UserStatus::Invited, now)
        .await
        .unwrap();
    app.state.db.add_membership(id, clinic, Role::Doctor, now).await.unwrap();
    let (token, hash) = articula::auth::tokens::new_token("inv");
    app.state.db.create_invitation(id, &hash, now, now + 86_400_000).await.unwrap();

    assert_eq!(app.login_raw("new@t.test", PASSWORD, "clinic").await.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .http
        .post(app.path("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": token, "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .http
        .post(app.path("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.login_raw("new@t.test", PASSWORD, "clinic").await.status(), StatusCode::OK);
    let res = app
        .http
        .post(app.path("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": token, "password": "another password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Many sign-ins from one address, and chat as fast as the sockets go.
fn busy_server(s: &mut articula::config::Settings) {
    s.login_rate_per_minute = 100_000;
    s.ws_commands_per_second = 100_000;
    s.ws_command_burst = 100_000;
}

/// Posts messages on `case`, ten in flight at a time, until `stop` is set; answers how many were
/// acknowledged (every one must be).
async fn chat_until(
    mut ws: Ws,
    case: articula_protocol::CaseId,
    stop: std::rc::Rc<std::cell::Cell<bool>>,
) -> u64 {
    use articula_protocol::{ClientBody, PostMessage};
    ws.subscribe(case, 0).await;
    let mut acked = 0;
    while !stop.get() {
        let ids: Vec<String> = (0..10).map(|_| ws.new_id()).collect();
        for id in &ids {
            let body = ClientBody::PostMessage(PostMessage {
                case_id: case,
                text: format!("shade A{acked}"),
                attachments: vec![],
                reply_to: None,
                mentions: vec![],
            });
            ws.send_with_id(id, body).await;
        }
        for id in &ids {
            ws.answer(id).await.expect("a chat message was refused");
            acked += 1;
        }
        ws.buffered.clear();
    }
    acked
}

/// SQLite has one writer at a time: a request that writes must wait for the lock (the event
/// log's group commits hold it many times a second), never fail with "database is locked".
async fn sign_ins_and_refreshes_wait_for_the_writer_while_chat_runs(app: TestApp) {
    const N: usize = 20;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown 11", w.lab).await;
    let clinic = w.clinic;
    for i in 0..N {
        app.user(&format!("busy{i}@t.test"), clinic, Role::Doctor).await;
    }
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut chats = Vec::new();
    let other = app.submitted_case(&w.doctor2, "Bridge", w.lab).await;
    for (s, case) in [(&w.doctor, case), (&w.tech, case), (&w.doctor2, other), (&w.admin, other)] {
        chats.push(actix_rt::spawn(chat_until(app.ws(s, Codec::Json).await, case, stop.clone())));
    }

    let documented = ["token_reused", "token_expired", "token_invalid", "session_revoked"];
    let mut failures = Vec::new();
    let mut refreshed = 0;
    for round in 0..5 {
        // 20 sign-ins at once.
        let logins = futures_util::future::join_all((0..N).map(|i| {
            let app = &app;
            async move { app.login_raw(&format!("busy{i}@t.test"), PASSWORD, "clinic").await }
        }))
        .await;
        let mut sessions = Vec::new();
        for res in logins {
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if status == StatusCode::OK {
                sessions.push((
                    body["access_token"].as_str().unwrap().to_owned(),
                    body["refresh_token"].as_str().unwrap().to_owned(),
                ));
            } else {
                failures.push(format!("round {round}: sign-in answered {status} {body}"));
            }
        }
        // Every session looks a while unused, so each of its next requests records its use.
        app.sql("UPDATE sessions SET last_used_at = last_used_at - 120000").await;
        // 20 refreshes (and the first five tokens presented twice at once), 20 requests that
        // touch their session, all at once.
        let refreshes = sessions.iter().chain(sessions.iter().take(5)).map(|(_, refresh)| {
            let app = &app;
            async move {
                let res = app
                    .http
                    .post(app.path("/api/v1/auth/refresh"))
                    .json(&json!({"refresh_token": refresh}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        });
        let touches = sessions.iter().map(|(access, _)| {
            let app = &app;
            async move {
                let res =
                    app.http.get(app.path("/api/v1/auth/sessions")).bearer_auth(access).send().await.unwrap();
                res.status()
            }
        });
        let (refreshes, touches) = futures_util::future::join(
            futures_util::future::join_all(refreshes),
            futures_util::future::join_all(touches),
        )
        .await;
        for (status, body) in refreshes {
            if status == StatusCode::OK {
                refreshed += 1;
            } else if !(status == StatusCode::UNAUTHORIZED && documented.iter().any(|c| body["error"] == *c))
            {
                failures.push(format!("round {round}: refresh answered {status} {body}"));
            }
        }
        for status in touches {
            // A request may come after its session's token was reused (revoked): 401.
            if status != StatusCode::OK && status != StatusCode::UNAUTHORIZED {
                failures.push(format!("round {round}: GET /auth/sessions answered {status}"));
            }
        }
    }
    stop.set(true);
    let mut chatted = 0;
    for c in chats {
        chatted += c.await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} failed requests (chat: {chatted} messages), the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    // Each round, at least the 15 tokens presented once rotate.
    assert!(refreshed >= 5 * 15, "{refreshed} refreshes succeeded");
    assert!(chatted > 0);
}
