//! Watch tokens (issue 22, `auth::watch_tokens`): a single-use, short-lived permission to watch
//! one operation without credentials, so that a browser's EventSource can follow progress.
//! Over gRPC here, attacker first: another user's operation, a reused token, an expired one,
//! one for another operation, one presented as a credential to another RPC, concurrent
//! redemptions, API-key scopes. Over REST through the real Envoy (and the logs of both): the
//! REST suite (tests/rest/test_operations.py) and [`rest_watch_by_token_logs_no_token`]; in
//! Chromium: [`a_browser_event_source_follows_an_operation_to_its_end`].

use std::{process::Stdio, time::Duration};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use tonic::{Code, Request, Status};

use crate::{
    common::{
        Options, TestApp, api_key, assert_code, bad_field, bearer, envoy::Envoy, free_port, reason,
        repo_root, tree,
    },
    operations::{User, create, organize, plan, user},
};

async fn token_for(app: &TestApp, user: &User, name: &str) -> Result<pb::WatchToken, Status> {
    app.operations()
        .create_watch_token(bearer(
            pb::CreateWatchTokenRequest { name: name.into() },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every snapshot of WatchOperation called with `request` (no credentials unless added).
async fn watch(
    app: &TestApp,
    request: Request<pb::WatchOperationRequest>,
) -> Result<Vec<pb::WatchOperationResponse>, Status> {
    let mut stream = app
        .operations()
        .watch_operation(request)
        .await?
        .into_inner();
    let mut snapshots = Vec::new();
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("the watch hung")?
    {
        snapshots.push(snapshot);
    }
    Ok(snapshots)
}

fn by_token(name: &str, token: &str) -> Request<pb::WatchOperationRequest> {
    Request::new(pb::WatchOperationRequest {
        name: name.into(),
        watch_token: token.into(),
    })
}

fn assert_token_refused(result: Result<Vec<pb::WatchOperationResponse>, Status>, what: &str) {
    let status = match result {
        Ok(snapshots) => panic!("{what}: the watch ran ({} snapshots)", snapshots.len()),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert_eq!(reason(&status), "TOKEN_INVALID", "{what}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_token_watches_its_operation_once_and_nothing_else() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MOVES_PER_SECOND", "200".into())],
        ..Default::default()
    })
    .await;
    let ann = user(&app, "watch-token-ann").await;
    let bob = user(&app, "watch-token-bob").await;
    for i in 0..60 {
        tree::write(
            &ann.root,
            &format!("in/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    tree::write(&ann.root, "other/x.txt", b"x");
    tree::write(&bob.root, "mine/y.txt", b"y");
    let planned = plan(&app, &ann, organize("other")).await;
    let bobs = plan(&app, &bob, organize("mine")).await;

    // A running operation, followed to its end with a token and no credentials.
    let running = create(&app, &ann, organize("in")).await;
    let token = token_for(&app, &ann, &running.name).await.unwrap();
    assert_eq!(token.name, running.name);
    assert!(token.token.starts_with("fow_"), "{token:?}");
    assert_eq!(
        token.watch_path,
        format!("/api/v1/{}:watch?watch_token={}", running.name, token.token)
    );
    let expires = token.expire_time.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((30..=61).contains(&expires), "expires in {expires} s");
    let snapshots = watch(&app, by_token(&running.name, &token.token))
        .await
        .unwrap();
    let last = snapshots.last().unwrap();
    assert_eq!(last.state, OperationState::Succeeded as i32, "{last:?}");
    assert_eq!(last.counters.unwrap().files_moved, 60);
    assert!(snapshots.iter().all(|s| s.name == running.name));

    // Used once: never again.
    assert_token_refused(
        watch(&app, by_token(&running.name, &token.token)).await,
        "a reused token",
    );

    // A token for one operation, presented for another of the same user: refused, and spent.
    let token = token_for(&app, &ann, &running.name).await.unwrap().token;
    assert_token_refused(
        watch(&app, by_token(&planned.name, &token)).await,
        "a token for another operation",
    );
    assert_token_refused(
        watch(&app, by_token(&running.name, &token)).await,
        "a token spent on the wrong operation",
    );

    // Another user's operation: no token for it (the same NOT_FOUND as a missing one), and
    // Bob's token does not open Ann's operation.
    let theirs = assert_code(token_for(&app, &bob, &planned.name).await, Code::NotFound);
    let missing = format!("operations/{}", uuid::Uuid::new_v4());
    let none = assert_code(token_for(&app, &bob, &missing).await, Code::NotFound);
    assert_eq!(
        theirs.message().replace(&planned.name, "X"),
        none.message().replace(&missing, "X")
    );
    let bobs_token = token_for(&app, &bob, &bobs.name).await.unwrap().token;
    assert_token_refused(
        watch(&app, by_token(&planned.name, &bobs_token)).await,
        "Bob's token on Ann's operation",
    );

    // Expired (its row aged in the database, as 60 s would): refused.
    let token = token_for(&app, &ann, &planned.name).await.unwrap().token;
    {
        use fileorganizer::schema::watch_tokens::dsl as w;
        let mut conn = app.db().await;
        let aged = diesel::update(w::watch_tokens)
            .filter(w::token_hash.eq(&fileorganizer::auth::secret_hash(&token)[..]))
            .set(w::expires_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(aged, 1, "the token is stored under its hash");
        // Only the hash is stored: the secret is nowhere in the table.
        let rows: Vec<Vec<u8>> = w::watch_tokens
            .select(w::token_hash)
            .load(&mut conn)
            .await
            .unwrap();
        assert!(
            rows.iter()
                .all(|h| h.len() == 32 && !String::from_utf8_lossy(h).contains("fow_"))
        );
    }
    assert_token_refused(
        watch(&app, by_token(&planned.name, &token)).await,
        "an expired token",
    );

    // Forged and malformed tokens.
    for forged in [
        "fow_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        "fow_".to_string(),
        "x".repeat(5000),
        format!("{bobs_token}' OR 1=1 --"),
    ] {
        assert_token_refused(
            watch(&app, by_token(&planned.name, &forged)).await,
            "a forged token",
        );
    }

    // No token and no credentials: the usual UNAUTHENTICATED.
    let anonymous = watch(&app, by_token(&planned.name, "")).await;
    let status = anonymous.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "CREDENTIALS_MISSING");
    assert!(status.message().contains("watch_token"), "{status:?}");

    // Credentials and a token together: INVALID_ARGUMENT naming the field, and the token is
    // left unspent.
    let token = token_for(&app, &ann, &planned.name).await.unwrap().token;
    let mut both = by_token(&planned.name, &token);
    both.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", ann.token).parse().unwrap(),
    );
    let status = watch(&app, both).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_field(&status), "watch_token");

    // The token is no credential for anything else: not as a bearer token, not as an API key,
    // not even for a watch of the same operation when sent that way.
    let get = pb::GetOperationRequest {
        name: planned.name.clone(),
    };
    let status = assert_code(
        app.operations()
            .get_operation(bearer(get.clone(), &token))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "TOKEN_INVALID");
    let status = assert_code(
        app.operations()
            .get_operation(api_key(get.clone(), &token))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "API_KEY_INVALID");
    let as_bearer = bearer(
        pb::WatchOperationRequest {
            name: planned.name.clone(),
            ..Default::default()
        },
        &token,
    );
    assert_eq!(
        watch(&app, as_bearer).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // Still unspent after all that: it watches its operation (PLANNED: one snapshot, the end).
    let snapshots = watch(&app, by_token(&planned.name, &token)).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].state, OperationState::Planned as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_token_let_exactly_one_in() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "watch-token-race").await;
    tree::write(&ann.root, "p/x.txt", b"x");
    let planned = plan(&app, &ann, organize("p")).await;
    for _ in 0..5 {
        let token = token_for(&app, &ann, &planned.name).await.unwrap().token;
        let attempts = (0..8).map(|_| {
            let (name, token) = (planned.name.clone(), token.clone());
            let operations = app.operations();
            async move {
                let mut operations = operations;
                operations
                    .watch_operation(by_token(&name, &token))
                    .await
                    .map(drop)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 1, "{results:?}");
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_create_a_watch_token() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("watch-token-keys")).await;
    let ann = User {
        token: session.access_token.clone(),
        root: app
            .state
            .config
            .storage_root
            .join(&session.user.as_ref().unwrap().id),
    };
    tree::write(&ann.root, "p/x.txt", b"x");
    let planned = plan(&app, &ann, organize("p")).await;
    let key = |scopes: &[&str]| {
        let mut auth = app.auth();
        let token = session.access_token.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        async move {
            auth.create_api_key(bearer(
                pb::CreateApiKeyRequest {
                    api_key: Some(pb::ApiKey {
                        display_name: format!("k {}", uuid::Uuid::new_v4().simple()),
                        scopes,
                        ..Default::default()
                    }),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .secret
        }
    };
    let request = || pb::CreateWatchTokenRequest {
        name: planned.name.clone(),
    };
    // Every scope but operations.read is refused, naming it.
    for scope in [
        "files.read",
        "files.write",
        "operations.write",
        "keys",
        "account",
    ] {
        let secret = key(&[scope]).await;
        let status = assert_code(
            app.operations()
                .create_watch_token(api_key(request(), &secret))
                .await,
            Code::PermissionDenied,
        );
        assert_eq!(reason(&status), "SCOPE_INSUFFICIENT", "{scope}");
        assert!(status.message().contains("operations.read"), "{status:?}");
    }
    // A key with operations.read (alone, or a key without scopes) may, and its token watches.
    for secret in [key(&["operations.read"]).await, key(&[]).await] {
        let token = app
            .operations()
            .create_watch_token(api_key(request(), &secret))
            .await
            .unwrap()
            .into_inner()
            .token;
        let snapshots = watch(&app, by_token(&planned.name, &token)).await.unwrap();
        assert_eq!(snapshots[0].state, OperationState::Planned as i32);
    }
    // A disabled owner's token is refused.
    let token = token_for(&app, &ann, &planned.name).await.unwrap().token;
    let id = uuid::Uuid::parse_str(&session.user.unwrap().id).unwrap();
    let mut conn = app.db().await;
    fileorganizer::db::users::set_disabled(&mut conn, id, true)
        .await
        .unwrap();
    // What an admin's disabling does to the cache of user states (`auth::sessions`).
    app.state
        .cache
        .invalidate(&[("auth_user", id.to_string())])
        .await;
    assert_token_refused(
        watch(&app, by_token(&planned.name, &token)).await,
        "a disabled user's token",
    );
}

/// The events of a server-sent-events body (`data: {…}` blocks), parsed.
fn sse_events(body: &str) -> Vec<serde_json::Value> {
    body.split("\n\n")
        .filter_map(|block| block.trim().strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// The whole REST flow through the real Envoy, in front of a server process whose JSON logs
/// (at debug level) are read at the end: neither they nor Envoy's access log hold the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_watch_by_token_logs_no_token() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let mut server = crate::common::KillOnDrop(
        app.fileorg_command(&["serve"])
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "debug,h2=info,hyper=info,tower=info")
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("TRUSTED_PROXIES", "127.0.0.2")
            .env("MOVES_PER_SECOND", "100")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read the log as it comes: a full pipe would stop the server.
    let stderr = server.0.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut log).unwrap();
        log
    });
    crate::common::connect_when_up(port).await;
    let envoy = Envoy::start(port).await;
    let http = reqwest::Client::new();
    let session = app.register(&TestApp::email("rest-watch-token")).await;
    let root = app
        .state
        .config
        .storage_root
        .join(&session.user.as_ref().unwrap().id);
    for i in 0..30 {
        tree::write(&root, &format!("in/f{i}.txt"), format!("{i}").as_bytes());
    }
    tree::write(&root, "other/x.txt", b"x");
    let auth = format!("Bearer {}", session.access_token);
    let post = |path: &str, body: serde_json::Value| {
        http.post(envoy.url(path))
            .header("authorization", &auth)
            .json(&body)
            .send()
    };
    let created: serde_json::Value = post(
        "/api/v1/operations",
        serde_json::json!({"kind": "OPERATION_KIND_ORGANIZE", "source_path": "in"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let name = created["name"].as_str().unwrap().to_string();
    let other: serde_json::Value = post(
        "/api/v1/operations",
        serde_json::json!({"kind": "OPERATION_KIND_ORGANIZE", "source_path": "other", "dry_run": true}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let other = other["name"].as_str().unwrap().to_string();

    let issued = post(&format!("/api/v1/{name}:watchToken"), serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
    let issued: serde_json::Value = issued.json().await.unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let watch_path = issued["watch_path"].as_str().unwrap().to_string();
    assert!(
        issued["expire_time"].as_str().unwrap().ends_with('Z'),
        "{issued}"
    );

    // No credentials: the token alone opens the event stream, to its end.
    let watched = http.get(envoy.url(&watch_path)).send().await.unwrap();
    assert_eq!(watched.status(), 200);
    assert_eq!(watched.headers()["content-type"], "text/event-stream");
    let events = sse_events(&watched.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["state"], "OPERATION_STATE_SUCCEEDED", "{events:?}");
    assert_eq!(last["counters"]["files_moved"], "30", "{last}");

    // Reused: 401 with the JSON error body, nothing streamed.
    let again = http.get(envoy.url(&watch_path)).send().await.unwrap();
    assert_eq!(again.status(), 401);
    let error: serde_json::Value = again.json().await.unwrap();
    assert_eq!(error["code"], 16, "{error}");
    assert!(
        error["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["reason"] == "TOKEN_INVALID"),
        "{error}"
    );

    // A fresh token: on another operation's URL (refused and spent), as a query parameter of
    // another route (Envoy: unknown parameter), as a bearer token (not a credential).
    let token2: serde_json::Value =
        post(&format!("/api/v1/{name}:watchToken"), serde_json::json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let token2 = token2["token"].as_str().unwrap().to_string();
    let elsewhere = http
        .get(envoy.url(&format!("/api/v1/{name}?watch_token={token2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400, "{elsewhere:?}");
    let as_bearer = http
        .get(envoy.url(&format!("/api/v1/{name}")))
        .header("authorization", format!("Bearer {token2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_bearer.status(), 401);
    let wrong = http
        .get(envoy.url(&format!("/api/v1/{other}:watch?watch_token={token2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let spent = http
        .get(envoy.url(&format!("/api/v1/{name}:watch?watch_token={token2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 401);
    // Without any token or credential: 401 that names the way in.
    let anonymous = http
        .get(envoy.url(&format!("/api/v1/{name}:watch")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.text().await.unwrap().contains("watch_token"));

    // The logs. SIGTERM flushes the server's.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.0.wait();
    let log = log_reader.join().unwrap();
    assert!(
        log.contains("WatchOperation"),
        "the server logged no watch: {log}"
    );
    // Envoy writes its access log in batches: wait for the last request's line.
    let mut access = envoy.log();
    for _ in 0..300 {
        if access
            .matches(&format!("\"GET /api/v1/{name}:watch HTTP/1.1\" 401"))
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        access = envoy.log();
    }
    assert!(
        access.contains(&format!("\"GET /api/v1/{name}:watch HTTP/1.1\" 200")),
        "{access}"
    );
    for secret in [&token, &token2] {
        assert!(
            !log.contains(secret.as_str()),
            "the server logged a watch token"
        );
        assert!(
            !access.contains(secret.as_str()),
            "Envoy logged a watch token: {access}"
        );
    }
}

/// A real browser: Chromium's EventSource, on a page of another origin (as the console is),
/// follows a running operation with a watch token to its last event; the same URL again is
/// refused (the token is spent) and the browser does not keep retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_event_source_follows_an_operation_to_its_end() {
    let page_origin = format!("http://127.0.0.1:{}", free_port());
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("MOVES_PER_SECOND", "10".into()),
            ("CORS_ORIGINS", page_origin.clone()),
        ],
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    let ann = user(&app, "watch-token-browser").await;
    for i in 0..40 {
        tree::write(
            &ann.root,
            &format!("in/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    let op = create(&app, &ann, organize("in")).await;
    let token = token_for(&app, &ann, &op.name).await.unwrap();
    let run = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/clients/watch_token.mjs"))
        .arg(&page_origin)
        .arg(envoy.url(&token.watch_path))
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test hung")
        .unwrap();
    assert!(
        output.status.success(),
        "watch_token.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|line| line.starts_with(b"{"))
            .expect("a JSON report"),
    )
    .unwrap();
    let events = report["events"].as_array().unwrap();
    assert_eq!(report["firstError"], serde_json::Value::Null, "{report}");
    let last = events.last().unwrap();
    assert_eq!(last["state"], "OPERATION_STATE_SUCCEEDED", "{report}");
    assert_eq!(last["counters"]["files_moved"], "40", "{report}");
    // Counters never go backwards (how many events arrive depends on when Chromium is up).
    let moved: Vec<i64> = events
        .iter()
        .map(|e| {
            e["counters"]["files_moved"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(moved.windows(2).all(|w| w[0] <= w[1]), "{report}");
    assert!(events.iter().all(|e| e["name"] == op.name.as_str()));
    // The spent token: refused, no message, and EventSource gave up.
    assert_eq!(report["again"]["opened"], false, "{report}");
    assert_eq!(report["again"]["messages"], 0, "{report}");
    assert_eq!(report["again"]["error"], "error", "{report}");
    assert_eq!(report["cspViolations"], serde_json::json!([]), "{report}");
    // Exactly two requests to the API: the stream and the refused retry.
    let to_api: Vec<&serde_json::Value> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u.as_str().unwrap().contains(":watch"))
        .collect();
    assert_eq!(to_api.len(), 2, "{report}");
}
