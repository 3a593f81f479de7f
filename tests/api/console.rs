//! The browser console (`console/`) in real headless Chromium, served by `fileorg serve` on
//! CONSOLE_ADDR and talking to the API on another origin over grpc-web only
//! (tests/clients/console_flow.mjs clicks through it). The test checks the disk itself after
//! the apply and after the undo, that CORS admits the console's origin, and that an origin not
//! in CORS_ORIGINS is refused — both by a preflight and by the same console served from that
//! origin, whose sign-in must fail in the browser. The console is opened with
//! `?api=<a decoy listener>` and must send that listener nothing (issue 18: the API origin
//! comes from the server's configuration, never from the page's URL), and it must work under
//! the Content-Security-Policy it is served with, without a single violation. Screenshots go
//! to `data/test-artifacts/console/`. A second test checks the security headers of every kind
//! of answer the console server gives and that another origin cannot frame the console
//! (tests/clients/console_frame.mjs).

use std::{
    collections::BTreeMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::{Options, PASSWORD, TestApp, free_port, node::build_workspaces, repo_root};
use fileorganizer::pb::fileorganizer::v1 as pb;

/// Only prevents a hung browser from hanging the suite.
const DEADLINE: Duration = Duration::from_secs(300);

const FILES: &[(&str, &str)] = &[
    ("notes.txt", "meeting notes"),
    ("todo.txt", "buy milk, organize files"),
    ("table.csv", "a,b\n1,2\n"),
    ("script.py", "print('hello')\n"),
];

fn files_under(root: &Path) -> BTreeMap<String, String> {
    walk(root, root)
}

fn walk(root: &Path, dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // the server's own .trash and temporary names
        }
        if path.is_dir() {
            found.extend(walk(root, &path));
        } else {
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            found.insert(relative, std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// A listener on loopback that records the first bytes of every connection it accepts (a
/// browser's preflight or request head), then closes it. Returns its URL and the records.
async fn decoy_listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, peer)) = listener.accept().await {
            let mut head = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut head))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let text = String::from_utf8_lossy(&head[..n]).into_owned();
            record.lock().unwrap().push(format!(
                "from {peer}: {:?}",
                text.lines().next().unwrap_or("")
            ));
        }
    });
    (url, seen)
}

async fn cors_allow_origin(api: &str, origin: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{api}/fileorganizer.v1.AuthService/Login"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent",
        )
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

/// Step 1: `fileorg serve` serves the built console, with the single-page
/// fallback, and CORS allows the console's origin and no other.
async fn step_served_with_cors(console_origin: &str, api: &str, bad_origin: &str) {
    for path in ["/", "/operations/some/deep/link"] {
        let page = reqwest::get(format!("{console_origin}{path}"))
            .await
            .unwrap();
        assert_eq!(page.status(), reqwest::StatusCode::OK, "served: {path}");
        let text = page.text().await.unwrap();
        assert!(text.contains("FileOrganizer Pro console"), "served: {path}");
    }
    assert_eq!(
        cors_allow_origin(api, console_origin).await.as_deref(),
        Some(console_origin),
        "CORS: the console's origin"
    );
    assert_eq!(
        cors_allow_origin(api, bad_origin).await,
        None,
        "CORS: another origin"
    );
}

/// Step 3, after the apply: every file in its category folder on disk,
/// nothing left in inbox/; the progress bar and the report's chart as the
/// page showed them (`applied`, reported by the browser test).
fn step_after_the_apply(root: &Path, applied: &Value) {
    let moved: BTreeMap<String, String> = [
        ("sorted/Documents/notes.txt", "meeting notes"),
        ("sorted/Documents/todo.txt", "buy milk, organize files"),
        ("sorted/Spreadsheets/table.csv", "a,b\n1,2\n"),
        ("sorted/Code/script.py", "print('hello')\n"),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        files_under(root),
        moved,
        "after the apply: the files on disk"
    );

    // The progress bar, fed by WatchOperation, reached 100 % and is full.
    let progress = &applied["progress"];
    assert_eq!(progress["now"], 100, "{applied}");
    assert_eq!(progress["text"], "100 %", "after the apply: {progress}");
    assert!(progress["values"].as_array().unwrap().contains(&100.into()));
    assert!(
        progress["fillWidth"].as_f64().unwrap() >= progress["barWidth"].as_f64().unwrap() - 1.0,
        "{progress}"
    );
    // One bar per category of the report, sized by file count.
    let chart: BTreeMap<String, i64> = applied["chart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bar| {
            assert!(bar["width"].as_f64().unwrap() > 0.0, "{bar}");
            (
                bar["category"].as_str().unwrap().to_string(),
                bar["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chart,
        BTreeMap::from([
            ("Code".to_string(), 1),
            ("Documents".to_string(), 2),
            ("Spreadsheets".to_string(), 1)
        ]),
        "after the apply: the chart"
    );
    assert_eq!(
        applied["appliedPlan"],
        serde_json::json!(vec!["COMPLETED"; FILES.len()]),
        "after the apply: {applied}"
    );
}

/// Step 5: what the page showed before the organize (`done`, reported by
/// the browser test at its end), and after the undo, on the page and on disk.
fn step_before_the_organize_and_after_the_undo(done: &Value, email: &str, root: &Path) {
    assert_eq!(done["who"], email, "before the organize: signed in as");
    assert!(
        done["rootListing"]
            .as_array()
            .unwrap()
            .contains(&"inbox".into())
    );
    let inbox: Vec<String> = FILES.iter().map(|(n, _)| format!("inbox/{n}")).collect();
    let mut sorted_inbox = inbox.clone();
    sorted_inbox.sort();
    assert_eq!(
        done["inboxListing"],
        serde_json::json!(sorted_inbox),
        "before the organize: inbox/"
    );
    let plan = done["plan"].as_array().unwrap();
    assert_eq!(plan.len(), FILES.len(), "{done}");
    for row in plan {
        assert_eq!(row["status"], "PLANNED", "{row}");
        let to = format!("sorted/{}/", row["category"].as_str().unwrap());
        assert!(row["to"].as_str().unwrap().starts_with(&to), "{row}");
    }
    assert_eq!(done["undoState"], "SUCCEEDED", "after the undo");
    assert_eq!(
        done["afterUndo"],
        serde_json::json!(sorted_inbox),
        "after the undo: inbox/ on the page"
    );
    // On disk after the undo: every file back in inbox/ with its content.
    let restored: BTreeMap<String, String> = FILES
        .iter()
        .map(|(n, t)| (format!("inbox/{n}"), t.to_string()))
        .collect();
    assert_eq!(
        files_under(root),
        restored,
        "after the undo: the files on disk"
    );
}

/// Step 6: the console from an origin not in CORS_ORIGINS: valid
/// credentials, yet the browser refuses the grpc-web call and the console
/// shows an error instead of signing in; no console error anywhere.
fn step_refused_from_another_origin(done: &Value) {
    let refused = &done["badOriginResult"];
    assert_eq!(refused["appVisible"], false, "{refused}");
    assert!(!refused["error"].as_str().unwrap().is_empty(), "{refused}");
    assert!(
        !refused["apiFailures"].as_array().unwrap().is_empty(),
        "{refused}"
    );
    assert_eq!(
        done["consoleErrors"].as_array().map(Vec::len),
        Some(0),
        "{done}"
    );
}

/// One browser session, in named steps (the `step_*` functions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_clicks_through_organize_and_undo_over_grpc_web_in_chromium() {
    tokio::task::spawn_blocking(build_workspaces).await.unwrap();
    let console_port = free_port();
    let console_origin = format!("http://127.0.0.1:{console_port}");
    // Nothing listens here: the browser test serves the console on it by interception.
    let bad_origin = format!("http://127.0.0.1:{}", free_port());
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("CONSOLE_ADDR", format!("127.0.0.1:{console_port}")),
            (
                "CONSOLE_DIR",
                repo_root().join("console/dist").display().to_string(),
            ),
            ("CORS_ORIGINS", console_origin.clone()),
        ],
        ..Options::default()
    })
    .await;
    let api = format!("http://127.0.0.1:{}", app.addr.port());

    step_served_with_cors(&console_origin, &api, &bad_origin).await;

    // Step 2: the browser signs up, uploads, previews and applies an
    // organize (tests/clients/console_flow.mjs), then reports and waits.
    let uploads = tempfile::tempdir().unwrap();
    for (name, text) in FILES {
        std::fs::write(uploads.path().join(name), text).unwrap();
    }
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    let email = TestApp::email("console");
    let (decoy, decoy_seen) = decoy_listener().await;

    let mut child = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/clients/console_flow.mjs"))
        .args([&console_origin, &api, &bad_origin])
        .arg(uploads.path())
        .arg(&shots)
        .arg(&email)
        .arg(&decoy)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_report = async |prefix: &str| -> Value {
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(json) = line.strip_prefix(prefix) {
                    return Some(serde_json::from_str::<Value>(json).unwrap());
                }
                println!("console_flow: {line}");
            }
            None
        })
        .await
        .expect("the browser test hung");
        found.unwrap_or(Value::Null)
    };

    let applied = next_report("APPLIED ").await;
    if applied.is_null() {
        let status = child.wait().await.unwrap();
        let stderr = stderr_task.await.unwrap();
        panic!(
            "the browser test stopped before the apply ({status}); the decoy at {decoy} \
             received {:?}:\n{stderr}",
            decoy_seen.lock().unwrap(),
        );
    }
    let user = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await
        .expect("the console registered the user")
        .into_inner()
        .user
        .unwrap();
    let root = app.state.config.storage_root.join(&user.id);
    step_after_the_apply(&root, &applied);

    // Step 4: the browser undoes, then tries the console from another origin.
    stdin.write_all(b"continue\n").await.unwrap();
    let done = next_report("DONE ").await;
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the browser test hung")
        .unwrap();
    let stderr = stderr_task.await.unwrap();
    assert!(
        status.success(),
        "console_flow.mjs failed ({status}):\n{stderr}"
    );
    println!("console screenshots: {}", shots.display());

    // ?api= changed nothing: the page named the real API and signed in there (the user
    // exists: the login above), and the decoy never saw a connection.
    assert_eq!(done["shownApi"], api.as_str(), "the API the page names");
    assert_eq!(
        *decoy_seen.lock().unwrap(),
        Vec::<String>::new(),
        "connections to the decoy"
    );
    // The whole flow ran under the console's Content-Security-Policy without a violation.
    assert_eq!(done["cspViolations"], serde_json::json!([]), "{done}");

    step_before_the_organize_and_after_the_undo(&done, &email, &root);
    step_refused_from_another_origin(&done);
}

/// Builds the console and starts a server serving it on its own origin (allowed by CORS),
/// with `extra` settings; returns the server and the console's origin.
async fn console_app(extra: Vec<(&'static str, String)>) -> (TestApp, String) {
    tokio::task::spawn_blocking(build_workspaces).await.unwrap();
    let console_port = free_port();
    let console_origin = format!("http://127.0.0.1:{console_port}");
    let mut env = vec![
        ("CONSOLE_ADDR", format!("127.0.0.1:{console_port}")),
        (
            "CONSOLE_DIR",
            repo_root().join("console/dist").display().to_string(),
        ),
        ("CORS_ORIGINS", console_origin.clone()),
    ];
    env.extend(extra);
    let app = TestApp::spawn_with(Options {
        env,
        ..Options::default()
    })
    .await;
    (app, console_origin)
}

/// Issue 18 item 6: the console's answers (the page, an asset, config.json, the single-page
/// fallback) carry the API's security headers plus a CSP naming only the console and the API,
/// and a page of another origin cannot frame the sign-in form (clickjacking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_served_with_security_headers_and_cannot_be_framed() {
    let (app, console_origin) = console_app(Vec::new()).await;
    let api = format!("http://127.0.0.1:{}", app.addr.port());

    let index = reqwest::get(format!("{console_origin}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = index
        .split('"')
        .find(|part| part.starts_with("./assets/") && part.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script in index.html:\n{index}"))
        .trim_start_matches('.')
        .to_string();
    let mut wanted: Vec<(String, String)> = fileorganizer::infra::security_headers::COMMON
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let csp = fileorganizer::infra::security_headers::console_csp(&api);
    assert!(csp.contains(&format!("connect-src 'self' {api};")), "{csp}");
    wanted.push(("content-security-policy".into(), csp));
    // Collected rather than asserted one by one, so a failure shows the browser's side too.
    let mut missing = Vec::new();
    for path in [
        "/",
        "/index.html",
        &script,
        "/config.json",
        "/operations/x/deep-link",
    ] {
        let response = reqwest::get(format!("{console_origin}{path}"))
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        for (name, value) in &wanted {
            let got = response.headers().get(name).map(|v| v.to_str().unwrap());
            if got != Some(value.as_str()) {
                missing.push(format!("{path}: {name} is {got:?}"));
            }
        }
    }
    let config: Value = reqwest::get(format!("{console_origin}/config.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config, serde_json::json!({ "apiUrl": api }));

    // The framing page comes from a server the browser script runs on another loopback port.
    let output = run_node("console_frame.mjs", [console_origin.as_ref()]).await;
    assert!(
        output.status.success(),
        "console_frame.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("framing attempt: {seen}");
    // The control frame (same origin as the framing page, no policy) loads and can be read,
    // so the probe works; the console's frame holds no sign-in form.
    assert_eq!(seen["control"]["marker"], "control frame", "{seen}");
    assert!(missing.is_empty(), "security headers: {missing:#?}\n{seen}");
    assert_ne!(
        seen["console"]["loginForm"], true,
        "the console was framed: {seen}"
    );
    assert!(
        seen["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("frame-ancestors")),
        "Chromium did not say it refused the frame: {seen}"
    );
}

async fn access_token(app: &TestApp, email: &str) -> String {
    access_token_with(app, email, PASSWORD).await
}

/// Every file path under `path` of the user with `token`, sorted (ListDirectory, all pages).
async fn files_listed(app: &TestApp, token: &str, path: &str) -> Vec<String> {
    let mut client = crate::files::files(app);
    let mut out = Vec::new();
    let mut pending = vec![path.to_string()];
    while let Some(dir) = pending.pop() {
        let mut page_token = String::new();
        loop {
            let page = client
                .list_directory(crate::common::bearer(
                    pb::ListDirectoryRequest {
                        path: dir.clone(),
                        page_token: page_token.clone(),
                        page_size: 1000,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .expect("list")
                .into_inner();
            for entry in page.entries {
                if entry.kind == pb::FileKind::Directory as i32 {
                    pending.push(entry.path);
                } else {
                    out.push(entry.path);
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    out.sort();
    out
}

/// Runs `tests/clients/<script>` with node and `args`; its output (bounded by DEADLINE).
async fn run_node<'a>(
    script: &str,
    args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
) -> std::process::Output {
    let output = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/clients").join(script))
        .args(args)
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(DEADLINE, output)
        .await
        .expect("the browser test hung")
        .unwrap()
}

/// Runs `tests/clients/<script>` with node and `args` (bounded by DEADLINE); it must succeed
/// and print `DONE <json>`, which is returned.
async fn run_browser_script<'a>(
    script: &str,
    args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
) -> Value {
    let output = run_node(script, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .expect("DONE line"),
    )
    .unwrap()
}

/// The console's uploads in Chromium (tests/clients/console_uploads.mjs) with the DEFAULT
/// upload limit of 10 a minute: a 500-file folder goes in as one archive and pressing Upload
/// again stores nothing twice (exactly 500 files, no " (1)" names); 12 single uploads meet the
/// limit, the page says it waits, and all 12 arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_uploads_a_500_file_folder_and_waits_out_the_upload_limit_in_chromium() {
    // The harness raises every limit; this test wants the shipped default back.
    let (app, console_origin) = console_app(vec![("RATE_LIMIT_UPLOAD", "10".into())]).await;
    assert_eq!(app.state.config.rate_limits.upload, 10);
    assert_eq!(app.state.config.rate_limits.window, Duration::from_secs(60));

    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    let mut expected = Vec::new();
    for i in 0..500 {
        let sub = format!("{}/{}", ["2019", "2020", "2021"][i % 3], i % 7);
        std::fs::create_dir_all(folder.join(&sub)).unwrap();
        let name = format!("{sub}/img_{i:03}.jpg");
        std::fs::write(
            folder.join(&name),
            format!("photo number {i}\n").repeat(1 + i % 5),
        )
        .unwrap();
        expected.push(format!("album/photos/{name}"));
    }
    expected.sort();
    let singles = dir.path().join("singles");
    std::fs::create_dir_all(&singles).unwrap();
    let mut expected_singles = Vec::new();
    for i in 0..12 {
        std::fs::write(singles.join(format!("s{i:02}.txt")), format!("single {i}")).unwrap();
        expected_singles.push(format!("inbox/s{i:02}.txt"));
    }
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    let (email1, email2) = (TestApp::email("folder"), TestApp::email("singles"));

    let done = run_browser_script(
        "console_uploads.mjs",
        [
            console_origin.as_ref(),
            folder.as_os_str(),
            singles.as_os_str(),
            email1.as_ref(),
            email2.as_ref(),
            shots.as_os_str(),
        ],
    )
    .await;

    // The folder: all 500 reported, then all 500 already there on the second press.
    assert_eq!(done["picked"], "500 file(s) chosen", "{done}");
    let first = &done["first"];
    assert_eq!(first["error"], "", "{first}");
    assert_eq!(
        (first["done"].as_i64(), first["total"].as_i64()),
        (Some(500), Some(500)),
        "{first}"
    );
    assert_eq!(first["states"]["done"], 500, "{first}");
    assert_eq!(first["summary"], "500 of 500 uploaded", "{first}");
    let second = &done["second"];
    assert_eq!(second["error"], "", "{second}");
    assert_eq!(second["states"]["identical"], 500, "{second}");
    assert_eq!(
        second["summary"], "500 of 500 uploaded (500 already there)",
        "{second}"
    );
    let token1 = access_token(&app, &email1).await;
    let stored = files_listed(&app, &token1, "album").await;
    assert_eq!(stored.len(), 500, "exactly 500 files");
    assert!(!stored.iter().any(|p| p.contains(" (")), "a copy was made");
    assert_eq!(stored, expected);

    // The singles: the page showed the wait, and all 12 arrived once.
    let waiting = &done["whileWaiting"];
    assert_eq!(waiting["waitHidden"], false, "{waiting}");
    assert!(
        waiting["waitText"]
            .as_str()
            .unwrap()
            .starts_with("Upload limit reached: waiting"),
        "{waiting}"
    );
    let single = &done["single"];
    assert_eq!(single["error"], "", "{single}");
    assert!(single["waits"].as_i64().unwrap() >= 1, "{single}");
    assert_eq!(single["summary"], "12 of 12 uploaded", "{single}");
    assert_eq!(single["states"]["done"], 12, "{single}");
    let token2 = access_token(&app, &email2).await;
    assert_eq!(files_listed(&app, &token2, "inbox").await, expected_singles);
    assert_eq!(
        done["consoleErrors"].as_array().map(Vec::len),
        Some(0),
        "{done}"
    );
}

/// Issue 21's console screens in Chromium (tests/clients/console_rules.mjs): a rule made in
/// the editor is previewed live as matching the invoice, saved, and applied by an organize
/// (checked on disk); a bad regular expression shows the server's field error next to the
/// condition; a stale edit is refused with a clear message; an arrival automation created on
/// the automations screen lists the operation an upload into its folder produced, with its
/// last run, and the link opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_edits_rules_with_a_live_preview_and_lists_automation_runs_in_chromium() {
    let (app, console_origin) = console_app(vec![("SCHEDULER_POLL_MS", "100".into())]).await;
    let uploads = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("invoice-1.pdf", "%PDF-1.4 invoice\n"),
        ("notes.txt", "meeting notes"),
    ] {
        std::fs::write(uploads.path().join(name), text).unwrap();
    }
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    let email = TestApp::email("console-rules");
    let done = run_browser_script(
        "console_rules.mjs",
        [
            console_origin.as_ref(),
            uploads.path().as_os_str(),
            email.as_ref(),
            shots.as_os_str(),
        ],
    )
    .await;
    println!("console_rules: {done}");

    // The live preview: the invoice matched by the rule being edited, the notes by none.
    let preview = &done["draftPreview"];
    assert_eq!(
        preview["inbox/invoice-1.pdf"]["matched"], "draft",
        "{preview}"
    );
    assert_eq!(
        preview["inbox/invoice-1.pdf"]["rule"], "Invoices",
        "{preview}"
    );
    assert_eq!(
        preview["inbox/invoice-1.pdf"]["to"], "inbox/Invoices/invoice-1.pdf",
        "{preview}"
    );
    assert!(
        preview["inbox/invoice-1.pdf"]["why"]
            .as_str()
            .unwrap()
            .contains("name_glob"),
        "{preview}"
    );
    assert_eq!(preview["inbox/notes.txt"]["matched"], "none", "{preview}");
    assert_eq!(done["listed"], serde_json::json!(["Invoices"]), "{done}");

    // The bad regex: the server's own field and words, next to the condition, both from the
    // preview as it was typed and from Save; not in the page's general error box.
    for seen in [&done["fromPreview"], &done["fromSave"]] {
        assert_eq!(seen["field"], "rule.conditions[0].name_regex", "{seen}");
        assert!(
            seen["text"].as_str().unwrap().contains("unclosed"),
            "{seen}"
        );
    }
    assert_eq!(done["fromSave"]["visible"], true);
    assert_eq!(done["fromSave"]["generalError"], "");

    // The stale edit was refused with a message, and overwrote nothing.
    let stale = &done["stale"];
    assert!(
        stale["text"]
            .as_str()
            .unwrap()
            .contains("changed elsewhere after you opened it"),
        "{stale}"
    );
    assert_eq!(stale["generalError"], "", "{stale}");

    // The organize applied the saved rule: on the plan and on disk.
    assert_eq!(
        done["plan"]["inbox/invoice-1.pdf"], "sorted/Invoices/invoice-1.pdf",
        "{done}"
    );
    // The plan names what decided: the rule (by its display name) for the invoice, the
    // layout template for the notes.
    let decided = &done["decidedBy"];
    let invoice = &decided["inbox/invoice-1.pdf"];
    assert!(
        invoice["rule"].as_str().unwrap().starts_with("rules/"),
        "{decided}"
    );
    assert!(
        invoice["text"].as_str().unwrap().starts_with("rule \""),
        "{decided}"
    );
    assert_eq!(
        decided["inbox/notes.txt"],
        serde_json::json!({ "text": "layout template", "rule": "" }),
        "{decided}"
    );
    let token = access_token(&app, &email).await;
    let sorted = files_listed(&app, &token, "sorted").await;
    assert!(
        sorted.contains(&"sorted/Invoices/invoice-1.pdf".to_string()),
        "{sorted:?}"
    );

    // The automation: no run before the upload, then its operation, last run and no error.
    let before = &done["before"];
    assert!(
        before["kind"].as_str().unwrap().starts_with("on arrival"),
        "{before}"
    );
    assert!(
        before["trigger"].as_str().unwrap().contains("\"drop\""),
        "{before}"
    );
    assert_eq!(before["lastRun"], "–", "{before}");
    assert_eq!(before["runs"], 0, "{before}");
    let after = &done["after"];
    assert_ne!(after["lastRun"], "–", "{after}");
    assert_eq!(after["runCount"], "1", "{after}");
    assert_eq!(after["lastError"], "none", "{after}");
    let operations = after["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "{after}");
    assert_eq!(done["pausedState"], "paused", "{done}");
    // The link opened that operation, whose records are the dropped file (placed by the rule).
    let opened = &done["opened"];
    assert_eq!(opened["name"], operations[0], "{opened}");
    assert_eq!(opened["state"], "SUCCEEDED", "{opened}");
    assert_eq!(
        opened["records"],
        serde_json::json!([["drop/invoice-9.pdf", "filed/Invoices/invoice-9.pdf"]]),
        "{opened}"
    );
    let filed = files_listed(&app, &token, "filed").await;
    assert_eq!(filed, ["filed/Invoices/invoice-9.pdf"]);
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "{done}");
}

/// The console's "Download as zip" in Chromium (tests/clients/console_download.mjs): the
/// folder being browsed comes down over grpc-web as one DownloadArchive, the browser saves it
/// (playwright's download event) under `<folder>.zip`, and the zip holds the folder's files,
/// checked here with Python's zipfile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_downloads_the_browsed_folder_as_a_zip_in_chromium() {
    let (app, console_origin) = console_app(Vec::new()).await;
    let email = TestApp::email("download");
    let registered = app.register(&email).await;
    let root = app
        .state
        .config
        .storage_root
        .join(registered.user.unwrap().id);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    crate::common::tree::write(&root, "album/a.txt", b"first");
    crate::common::tree::write(&root, "album/2020/b.bin", &big);
    crate::common::tree::write(&root, "other/c.txt", b"not in the zip");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.zip");
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();

    let done = run_browser_script(
        "console_download.mjs",
        [
            console_origin.as_ref(),
            email.as_ref(),
            "album".as_ref(),
            saved.as_ref(),
            shots.as_ref(),
        ],
    )
    .await;
    assert_eq!(done["error"], "", "{done}");
    assert_eq!(done["suggested"], "album.zip", "{done}");
    assert!(
        done["status"]
            .as_str()
            .unwrap()
            .starts_with("Downloaded album.zip"),
        "{done}"
    );
    assert_eq!(
        done["consoleErrors"].as_array().map(Vec::len),
        Some(0),
        "{done}"
    );
    let zip = std::fs::read(&saved).unwrap();
    let listed: Vec<String> = crate::exports::python_zip_listing(&zip)
        .into_iter()
        .map(|(name, (size, _))| format!("{name} {size}"))
        .collect();
    assert_eq!(listed, ["2020/ 0", "2020/b.bin 3000000", "a.txt 5"]);
}

/// Every record of operation `name` as the server has it: original path → (new path,
/// category, status name as the console shows it, duplicate_of_path).
async fn server_records(
    app: &TestApp,
    token: &str,
    name: &str,
) -> BTreeMap<String, (String, String, String, String)> {
    let page = crate::files::files(app)
        .list_file_records(crate::common::bearer(
            pb::ListFileRecordsRequest {
                parent: name.into(),
                page_size: 1000,
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("ListFileRecords")
        .into_inner();
    assert!(page.next_page_token.is_empty());
    page.file_records
        .into_iter()
        .map(|r| {
            let status = pb::FileRecordStatus::try_from(r.status)
                .unwrap()
                .as_str_name()
                .trim_start_matches("FILE_RECORD_STATUS_")
                .to_string();
            (
                r.original_path,
                (r.new_path, r.category, status, r.duplicate_of_path),
            )
        })
        .collect()
}

/// The plan rows a browser script reported, keyed like `server_records`.
fn page_records(rows: &Value) -> BTreeMap<String, (String, String, String, String)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (
                s("path"),
                (s("to"), s("category"), s("status"), s("duplicateOf")),
            )
        })
        .collect()
}

/// Issue 22's operations part of the console in Chromium (tests/clients/console_operations.mjs):
/// the organize options with their defaults and the server's field error next to the template;
/// the plan with the duplicate marked, the category and what decided each destination; the
/// report with its three exports and the duplicate groups; the undo regressions (the plan
/// re-read as UNDONE, the applied report gone, no stale status under a later error); the
/// Operations screen's cancel, undo, filters and pages; reopening an operation; and, at 390 px,
/// the plan scrolling inside its card. Everything the page showed is compared with what the
/// server says and what is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_filters_reopens_undoes_and_cancels_operations_in_chromium() {
    // Moves are paced so that an apply of bulk/ is still moving files when Cancel is pressed.
    let (app, console_origin) = console_app(vec![("MOVES_PER_SECOND", "20".into())]).await;
    let email = TestApp::email("console-ops");
    let registered = app.register(&email).await;
    let token = registered.access_token.clone();
    let root = app
        .state
        .config
        .storage_root
        .join(registered.user.unwrap().id);
    let photo = b"\xff\xd8\xff\xe0 the same photo twice".as_slice();
    let mut files: BTreeMap<String, Vec<u8>> = [
        ("inbox/photo.jpg", photo),
        ("inbox/copy/photo-copy.jpg", photo),
        ("inbox/notes.txt", b"meeting notes".as_slice()),
        ("inbox/table.csv", b"a,b\n1,2\n".as_slice()),
        (
            "inbox/debug.log",
            b"left out by the exclude glob".as_slice(),
        ),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c.to_vec()))
    .collect();
    for i in 0..120 {
        files.insert(
            format!("bulk/{:02}/file{i}.txt", i % 6),
            format!("bulk file {i}").into_bytes(),
        );
    }
    for (path, content) in &files {
        crate::common::tree::write(&root, path, content);
    }
    // The kept file of the duplicate pair is the older one.
    crate::common::tree::set_mtime(&root, "inbox/photo.jpg", 1_600_000_000);
    crate::common::tree::set_mtime(&root, "inbox/copy/photo-copy.jpg", 1_700_000_000);
    let saved = tempfile::tempdir().unwrap();
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();

    let done = run_browser_script(
        "console_operations.mjs",
        [
            console_origin.as_ref(),
            email.as_ref(),
            saved.path().as_os_str(),
            shots.as_os_str(),
        ],
    )
    .await;
    println!("console_operations: {done}");
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "{done}");

    // Before any operation the plan says so in one row across every column.
    let empty = &done["emptyPlan"];
    assert_eq!(empty.as_array().unwrap().len(), 1, "{empty}");
    assert_eq!(empty[0]["cls"], "empty", "{empty}");
    assert_eq!(empty[0]["span"], 7, "{empty}");

    // 1. The defaults the server applies, shown; the bad template's error next to the box.
    assert_eq!(
        done["defaults"],
        serde_json::json!({
            "op-kind": "ORGANIZE", "layout-template": "{category}/{name}",
            "duplicate-policy": "REPORT_ONLY", "conflict-policy": "RENAME",
            "apply-rules": "auto", "include-globs": "", "exclude-globs": "",
        }),
    );
    let bad = &done["badTemplate"];
    assert_eq!(bad["field"], "operation.layout_template", "{bad}");
    assert_eq!(bad["visible"], true, "{bad}");
    assert!(bad["text"].as_str().unwrap().contains("nope"), "{bad}");
    assert_eq!(bad["generalError"], "", "{bad}");
    assert_eq!(
        done["fieldErrorsAfter"], 0,
        "the field error stayed: {done}"
    );

    // 2. The dry run's plan is the server's: same records, destinations, categories and
    // duplicate marks; the log file was left out; the duplicate is marked in words too.
    let first = done["planned"]["name"].as_str().unwrap().to_string();
    let records = server_records(&app, &token, &first).await;
    let planned = page_records(&done["planned"]["rows"]);
    assert_eq!(
        planned.keys().collect::<Vec<_>>(),
        records.keys().collect::<Vec<_>>()
    );
    assert!(!planned.contains_key("inbox/debug.log"), "{planned:?}");
    for (path, (to, category, status, duplicate_of)) in &planned {
        let (s_to, s_category, _, s_duplicate_of) = &records[path];
        assert_eq!(
            (to, category, duplicate_of),
            (s_to, s_category, s_duplicate_of),
            "{path}"
        );
        assert!(
            status == "PLANNED" || status == "DUPLICATE",
            "{path}: {status}"
        );
    }
    let duplicate = done["planned"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "inbox/copy/photo-copy.jpg")
        .unwrap();
    assert_eq!(duplicate["duplicateOf"], "inbox/photo.jpg", "{duplicate}");
    assert_eq!(duplicate["marked"], true, "{duplicate}");
    assert_eq!(
        duplicate["duplicateText"], "Duplicate of inbox/photo.jpg",
        "{duplicate}"
    );
    assert!(
        duplicate["to"]
            .as_str()
            .unwrap()
            .starts_with("sorted/_duplicates/"),
        "{duplicate}"
    );
    for row in done["planned"]["rows"].as_array().unwrap() {
        assert_eq!(row["decidedBy"], "layout template", "{row}");
        assert_eq!(row["status"], row["statusText"], "{row}");
    }

    // 3. Applied: every record moved; the report, its exports and the duplicate group.
    for row in done["applied"].as_array().unwrap() {
        assert!(
            row["status"] == "COMPLETED" || row["status"] == "DUPLICATE",
            "{row}"
        );
    }
    assert_eq!(done["report"]["operation"], first.as_str(), "{done}");
    assert_ne!(done["report"]["filesMoved"], "0", "{done}");
    let id = first.trim_start_matches("operations/");
    for format in ["csv", "json", "html"] {
        assert_eq!(
            done["exports"][format],
            format!("report-{id}.{format}"),
            "{done}"
        );
    }
    let csv = std::fs::read_to_string(saved.path().join(format!("report-{id}.csv"))).unwrap();
    assert!(
        csv.starts_with("seq,original_path,new_path,status,category"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + records.len(), "{csv}");
    let json: Value = serde_json::from_slice(
        &std::fs::read(saved.path().join(format!("report-{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["file_records"].as_array().map(Vec::len),
        Some(records.len())
    );
    // The report on the page is the one exported at the same moment.
    assert_eq!(
        json["report"]["totals"]["files_moved"], done["report"]["filesMoved"],
        "{json}"
    );
    let html = std::fs::read_to_string(saved.path().join(format!("report-{id}.html"))).unwrap();
    assert!(html.to_lowercase().contains("<html"), "{html}");
    assert!(
        html.contains("photo-copy.jpg"),
        "the duplicate group is in the page"
    );
    let groups =
        fileorganizer::pb::fileorganizer::v1::report_service_client::ReportServiceClient::new(
            tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect_lazy(),
        )
        .list_duplicate_groups(crate::common::bearer(
            pb::ListDuplicateGroupsRequest {
                parent: format!("reports/{id}"),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let shown = &done["duplicates"];
    assert_eq!(shown["total"], groups.total_size.to_string(), "{shown}");
    // The groups and their files as the server has them; where each file was then ("now" on
    // the page, before the undo) is where the applied plan had moved it.
    let server_groups: Vec<Value> = groups
        .duplicate_groups
        .iter()
        .flat_map(|g| {
            g.files.iter().map(|f| {
                serde_json::json!({ "hash": g.content_hash, "path": f.original_path, "kept": f.kept })
            })
        })
        .collect();
    let applied: BTreeMap<String, String> = page_records(&done["applied"])
        .into_iter()
        .map(|(path, (to, ..))| (path, to))
        .collect();
    let page_groups: Vec<Value> = shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(
                r["now"],
                applied[r["path"].as_str().unwrap()].as_str(),
                "{r}"
            );
            serde_json::json!({ "hash": r["hash"], "path": r["path"], "kept": r["kept"] })
        })
        .collect();
    assert_eq!(page_groups, server_groups, "{shown}");
    assert_eq!(server_groups.len(), 2, "one pair: {shown}");
    assert_eq!(
        shown["rows"][0]["path"], "inbox/photo.jpg",
        "the older one is kept"
    );
    assert_eq!(shown["rows"][0]["kept"], true);

    // 4. After the undo the plan shows what the server says now (UNDONE), not COMPLETED; the
    // applied report is gone; an error afterwards has no "Undone…" status under it.
    let records = server_records(&app, &token, &first).await;
    assert!(
        records.values().all(|(_, _, status, _)| status == "UNDONE"),
        "{records:?}"
    );
    let after_undo = &done["afterUndo"];
    let shown: BTreeMap<_, _> = page_records(&after_undo["rows"])
        .into_iter()
        .map(|(p, (_, _, s, _))| (p, s))
        .collect();
    let server: BTreeMap<_, _> = records
        .iter()
        .map(|(p, (_, _, s, _))| (p.clone(), s.clone()))
        .collect();
    assert_eq!(shown, server, "{after_undo}");
    assert_eq!(after_undo["reportVisible"], false, "{after_undo}");
    assert_eq!(after_undo["reportOperation"], Value::Null, "{after_undo}");
    assert_eq!(after_undo["opName"], first.as_str(), "{after_undo}");
    let after_error = &done["afterError"];
    assert!(
        after_error["error"].as_str().unwrap().contains("NOT_FOUND"),
        "{after_error}"
    );
    assert_eq!(after_error["status"], "", "{after_error}");

    // 5. The Operations screen against ListOperations: the list, the cancel, the undo.
    let mut ops = app.operations();
    let every = ops
        .list_operations(crate::common::bearer(
            pb::ListOperationsRequest::default(),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .operations;
    // Step 8's apply of bulk/ and its undo came after the list was read: checked below.
    let bulk = done["cancelledApply"]["name"].as_str().unwrap();
    let (bulk_ops, listed): (Vec<_>, Vec<_>) = every
        .into_iter()
        .partition(|o| o.name == bulk || o.undo_of == bulk);
    let state = |name: &str| {
        let op = listed.iter().find(|o| o.name == name).unwrap();
        pb::OperationState::try_from(op.state)
            .unwrap()
            .as_str_name()
            .trim_start_matches("OPERATION_STATE_")
            .to_string()
    };
    let (second, third) = (
        done["second"].as_str().unwrap(),
        done["third"].as_str().unwrap(),
    );
    assert_eq!(state(second), "CANCELLED");
    assert_eq!(done["cancelledRow"]["state"], "CANCELLED", "{done}");
    assert!(
        done["listed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == second
                && r["state"] == "PLANNED"
                && r["buttons"].as_array().unwrap().contains(&"Cancel".into())),
        "{done}"
    );
    assert!(
        done["thirdButtons"]
            .as_array()
            .unwrap()
            .contains(&"Undo".into()),
        "{done}"
    );
    let third_op = listed.iter().find(|o| o.name == third).unwrap();
    assert!(!third_op.undone_by.is_empty(), "{third_op:?}");
    assert!(
        done["undoneFromList"]
            .as_str()
            .unwrap()
            .contains(&third_op.undone_by),
        "{done}"
    );
    let rows: Vec<(String, String, String)> = done["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("name"), s("kind"), s("state"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = listed
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                pb::OperationKind::try_from(o.kind)
                    .unwrap()
                    .as_str_name()
                    .trim_start_matches("OPERATION_KIND_")
                    .to_string(),
                state(&o.name),
            )
        })
        .collect();
    assert_eq!(rows, expected, "the list, newest first");
    assert_eq!(
        expected.len(),
        5,
        "A, its undo, B, C, its undo: {expected:?}"
    );
    // Filters: the two undos; the one cancelled.
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let undos: Vec<String> = expected
        .iter()
        .filter(|r| r.1 == "UNDO")
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(names(&done["undos"]), undos);
    assert_eq!(names(&done["cancelled"]), [second]);
    // Pages of 2: 2, 2, 1 in the server's order; Newer shows the page before again.
    let pages = &done["paging"]["pages"];
    let flat: Vec<String> = pages
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
        })
        .collect();
    let all_names: Vec<String> = expected.iter().map(|r| r.0.clone()).collect();
    assert_eq!(flat, all_names, "{pages}");
    assert_eq!(
        pages
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!(done["paging"]["backOne"], pages[1], "{pages}");

    // On disk every file is where it was: inbox/ after both undos, bulk/ after the undo of the
    // cancelled apply (step 8).
    let on_disk: BTreeMap<_, _> = files
        .iter()
        .map(|(path, content)| (path.clone(), crate::common::tree::hash_of(content)))
        .collect();
    assert_eq!(
        crate::common::tree::snapshot(&root),
        on_disk,
        "after both undos, on disk"
    );

    // 8. Cancelled while applying: the page said how many files had moved (as the server
    // counts them), offered Undo, and the undo put them back (the disk check above).
    let bulk_op = bulk_ops.iter().find(|o| o.name == bulk).unwrap();
    assert_eq!(bulk_op.state, pb::OperationState::Cancelled as i32);
    let moved = bulk_op.counters.as_ref().unwrap().files_moved;
    assert!(moved > 0 && moved < 120, "moved {moved}");
    let cancelled_apply = &done["cancelledApply"];
    assert_eq!(cancelled_apply["state"], "CANCELLED", "{cancelled_apply}");
    assert!(
        cancelled_apply["status"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Cancelled {bulk} after {moved} move(s)")),
        "{cancelled_apply}"
    );
    assert_eq!(
        cancelled_apply["statuses"]["COMPLETED"], moved,
        "{cancelled_apply}"
    );
    assert_eq!(cancelled_apply["undoEnabled"], true, "{cancelled_apply}");
    assert_eq!(cancelled_apply["cancelEnabled"], false, "{cancelled_apply}");
    assert!(
        cancelled_apply["undone"]
            .as_str()
            .unwrap()
            .starts_with("Undone by operations/"),
        "{cancelled_apply}"
    );
    assert!(bulk_ops.iter().any(|o| o.undo_of == bulk), "{bulk_ops:?}");

    // 6. Reopened from the list: the first operation's records as the server has them, and its
    // report, marked as undone.
    let reopened = &done["reopened"];
    assert_eq!(reopened["screen"], "files", "{reopened}");
    assert_eq!(reopened["opName"], first.as_str(), "{reopened}");
    assert_eq!(reopened["state"], state(&first), "{reopened}");
    let shown: BTreeMap<_, _> = page_records(&reopened["rows"])
        .into_iter()
        .map(|(p, (_, _, s, _))| (p, s))
        .collect();
    assert_eq!(shown, server, "{reopened}");
    assert_eq!(reopened["reportOperation"], first.as_str(), "{reopened}");
    assert!(
        reopened["reportUndone"]
            .as_str()
            .unwrap()
            .starts_with("Undone by operations/"),
        "{reopened}"
    );
    assert_eq!(reopened["undoDisabled"], true, "{reopened}");

    // 7. Narrow: the plan scrolls inside its card, which stays on the screen.
    for width in ["at390", "at360"] {
        let b = &done[width];
        let f = |k: &str| b[k].as_f64().unwrap();
        assert_eq!(b["overflowX"], "auto", "{b}");
        assert!(f("boxRight") <= f("cardRight") + 0.5, "{width}: {b}");
        assert!(f("cardRight") <= f("viewport") + 0.5, "{width}: {b}");
        assert!(
            f("boxScrollWidth") > f("boxClientWidth"),
            "the table is wider and scrolls: {b}"
        );
    }
    let o = &done["operationsAt360"];
    assert!(
        o["boxRight"].as_f64().unwrap() <= o["cardRight"].as_f64().unwrap() + 0.5,
        "{o}"
    );
}

/// Issue 22's account and file screens in Chromium (tests/clients/console_account.mjs), each
/// checked against the server afterwards: the session survives a reload without the access
/// token in Web Storage, and logout ends it (the kept refresh token is refused); a file is
/// downloaded byte for byte, deleted to the trash, restored (on disk again) or purged (gone
/// from disk); search and its field error; a category created and edited (as the server lists
/// it); an API key's secret shown once, copied, and working for a real call within its scope
/// only, another revoked (refused); usage as the server computes it, with the rate-limit
/// counters an administrator sees; the password change (the old one refused, the new one
/// accepted); and every screen of the nav at 1100 and 360 px: screenshots, no serious or
/// critical axe violation, nothing wider than the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_account_screens_trash_search_keys_usage_profile_in_chromium() {
    use pb::{file_service_client::FileServiceClient, report_service_client::ReportServiceClient};
    use tonic::{Code, transport::Channel};

    let (app, console_origin) = console_app(Vec::new()).await;
    let email = TestApp::email("console-account");
    let registered = app.register(&email).await;
    let user_id = registered.user.unwrap().id;
    fileorganizer::db::users::set_role(
        &mut app.db().await,
        &email,
        fileorganizer::domain::Role::Admin,
    )
    .await
    .unwrap();
    let root = app.state.config.storage_root.join(&user_id);
    for (name, text) in [
        ("notes.txt", "meeting notes"),
        ("todo.txt", "buy milk"),
        ("table.csv", "a,b\n1,2\n"),
    ] {
        crate::common::tree::write(&root, &format!("inbox/{name}"), text.as_bytes());
    }
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    let new_password = "a much better passphrase";
    let done = run_browser_script(
        "console_account.mjs",
        [
            console_origin.as_ref(),
            email.as_ref(),
            new_password.as_ref(),
            shots.as_os_str(),
        ],
    )
    .await;
    println!("console_account: {done}");
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();

    // The session: only the refresh token is kept (in sessionStorage), never an access token,
    // and it is rotated by the reload.
    let tokens: Vec<&str> = done["accessTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(!tokens.is_empty(), "{done}");
    let kept_token = |kept: &Value| -> String {
        assert_eq!(kept["local"], serde_json::json!({}), "localStorage: {kept}");
        assert_eq!(kept["cookies"], serde_json::json!([]), "cookies: {kept}");
        let session = kept["session"].as_object().unwrap();
        assert_eq!(session.len(), 1, "sessionStorage: {kept}");
        let token = session["fileorganizer.refreshToken"]
            .as_str()
            .unwrap()
            .to_string();
        for access in &tokens {
            assert!(!token.contains(access), "an access token is kept: {kept}");
        }
        token
    };
    let first = kept_token(&done["keptAfterLogin"]);
    let after_reload = kept_token(&done["keptAfterReload"]);
    assert_ne!(first, after_reload, "the reload rotated the refresh token");
    let reload = &done["afterReload"];
    assert_eq!(reload["app"], true, "{reload}");
    assert_eq!(reload["login"], false, "{reload}");
    assert_eq!(reload["who"], email.as_str(), "{reload}");
    assert_eq!(reload["status"], "Signed in (session resumed).", "{reload}");
    assert_eq!(reload["error"], "", "{reload}");

    // Download, delete, restore, empty the trash: on the page and on disk.
    assert_eq!(done["downloaded"]["name"], "notes.txt", "{done}");
    assert_eq!(done["downloaded"]["text"], "meeting notes", "{done}");
    assert_eq!(
        done["emptyFolder"],
        serde_json::json!([["empty", "This folder is empty."]])
    );
    // The listing's second column holds the category and says so (it was headed "Kind").
    assert_eq!(
        done["listingHeaders"],
        serde_json::json!(["Name", "Category", "Size", "Actions"])
    );
    assert_eq!(
        done["trashed"],
        serde_json::json!(["sorted/Documents/todo.txt", "sorted/Spreadsheets/table.csv"])
    );
    assert_eq!(
        done["afterRestore"],
        serde_json::json!(["sorted/Spreadsheets/table.csv"])
    );
    assert_eq!(done["confirmText"], "Delete 1 item(s) permanently");
    assert_eq!(
        done["afterEmpty"]["rows"],
        serde_json::json!([["empty", "The trash is empty."]])
    );
    assert_eq!(
        done["restoredListing"],
        serde_json::json!(["sorted/Documents/notes.txt", "sorted/Documents/todo.txt"])
    );
    let on_disk: BTreeMap<String, String> = [
        ("sorted/Documents/notes.txt", "meeting notes"),
        ("sorted/Documents/todo.txt", "buy milk"),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    assert_eq!(files_under(&root), on_disk, "restored and purged on disk");
    let token = access_token_with(&app, &email, new_password).await;
    let trash = FileServiceClient::new(channel.clone())
        .list_trash(crate::common::bearer(
            pb::ListTrashRequest::default(),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(trash.trash_items.is_empty(), "{trash:?}");

    // Search.
    assert_eq!(done["shortName"]["field"], "name_contains", "{done}");
    assert_eq!(done["shortName"]["error"], "", "{done}");
    assert_eq!(
        done["searched"],
        serde_json::json!([["inbox/notes.txt", "sorted/Documents/notes.txt", "Documents"]])
    );
    assert_eq!(done["slotAfter"], false, "the field error went away");

    // Categories, as the server has them.
    assert_eq!(
        done["receipts"],
        serde_json::json!(["Receipts", "rcpt, inv", "**/receipt-*"])
    );
    assert_eq!(
        done["badCategory"]["field"], "category.extensions",
        "{done}"
    );
    assert_eq!(done["badCategory"]["error"], "", "{done}");
    let categories = FileServiceClient::new(channel.clone())
        .list_categories(crate::common::bearer(
            pb::ListCategoriesRequest::default(),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .categories;
    let receipts = categories
        .iter()
        .find(|c| c.display_name == "Receipts")
        .expect("Receipts is listed");
    assert_eq!(receipts.extensions, ["rcpt", "inv"]);
    assert_eq!(receipts.globs, ["**/receipt-*"]);
    assert_eq!(receipts.color, "#2a6f3b");
    assert!(!categories.iter().any(|c| c.display_name == "Nothing"));

    // API keys: shown once, copied, gone from the page; it works within its scope only.
    let secret = done["secret"].as_str().unwrap();
    assert!(secret.starts_with("fo_"), "{done}");
    assert_eq!(done["copied"], secret, "the Copy button");
    let row = &done["keyRow"];
    assert_eq!(row["state"], "active", "{row}");
    assert_eq!(row["scopes"], "files.read", "{row}");
    assert!(!row["text"].as_str().unwrap().contains(secret), "{row}");
    assert_eq!(done["secretAfterDismiss"], false, "{done}");
    assert_eq!(
        done["secretAfterLeaving"],
        serde_json::json!({ "inPage": false, "boxHidden": true })
    );
    assert_eq!(
        done["keyStates"],
        serde_json::json!({ "ci-read": "active", "to-revoke": "revoked" })
    );
    let mut files = FileServiceClient::new(channel.clone());
    let listed = files
        .list_directory(crate::common::api_key(
            pb::ListDirectoryRequest {
                path: "sorted/Documents".into(),
                ..Default::default()
            },
            secret,
        ))
        .await
        .expect("the key made in the console lists files")
        .into_inner();
    assert_eq!(listed.entries.len(), 2, "{listed:?}");
    let refused = files
        .delete_file(crate::common::api_key(
            pb::DeleteFileRequest {
                path: "sorted/Documents/notes.txt".into(),
            },
            secret,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let revoked = files
        .list_directory(crate::common::api_key(
            pb::ListDirectoryRequest::default(),
            done["revokedSecret"].as_str().unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");

    // Usage as the server computes it; an administrator sees the rate-limit counters.
    let summary = ReportServiceClient::new(channel.clone())
        .get_usage_summary(crate::common::bearer(pb::GetUsageSummaryRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let usage = &done["usage"];
    assert_eq!(
        usage["used"],
        summary.storage_used_bytes.to_string(),
        "{usage}"
    );
    assert_eq!(
        usage["quota"],
        summary.storage_quota_bytes.to_string(),
        "{usage}"
    );
    assert!(
        usage["counters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["bucket"] == "api" && c["used"].as_i64().unwrap() > 0),
        "{usage}"
    );

    // Every screen at both widths: nothing wider than the window, no error shown.
    let screens: Vec<&str> = done["screens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for mine in [
        "files",
        "trash",
        "search",
        "categories",
        "keys",
        "usage",
        "profile",
    ] {
        assert!(screens.contains(&mine), "{screens:?}");
    }
    let walked = done["walked"].as_object().unwrap();
    assert_eq!(walked.len(), screens.len() * 2 + 1, "{walked:?}");
    for (shot, seen) in walked {
        assert!(
            seen["page"].as_i64().unwrap() <= seen["window"].as_i64().unwrap(),
            "{shot} is wider than the window: {seen}"
        );
        assert!(
            seen["error"].as_str().unwrap_or("").is_empty(),
            "{shot}: {seen}"
        );
        assert!(shots.join(format!("walk-{shot}.png")).is_file(), "{shot}");
    }

    // Profile and password: refused next to the fields, then changed; the server agrees.
    assert_eq!(done["who"], format!("Ada Lovelace <{email}>"));
    assert!(
        done["wrongCurrent"]["text"]
            .as_str()
            .unwrap()
            .contains("is not the current password"),
        "{done}"
    );
    assert_eq!(done["wrongCurrent"]["error"], "", "{done}");
    assert_eq!(done["mismatch"], "The two new passwords differ.");
    assert_eq!(done["stillSignedIn"], true);
    assert_eq!(done["keptAfterLogout"]["session"], serde_json::json!({}));
    let after_logout = &done["afterLogoutReload"];
    assert_eq!(after_logout["app"], false, "{after_logout}");
    assert_eq!(after_logout["login"], true, "{after_logout}");
    assert_eq!(after_logout["kept"]["session"], serde_json::json!({}));
    assert_eq!(done["oldPassword"]["app"], false, "{done}");
    assert!(
        done["oldPassword"]["error"]
            .as_str()
            .unwrap()
            .contains("INVALID_CREDENTIALS"),
        "{done}"
    );
    assert_eq!(done["newPasswordWho"], format!("Ada Lovelace <{email}>"));
    let old = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "{old:?}");
    // The refresh token the page kept before logging out was revoked with the session.
    let spent = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: after_reload,
        })
        .await
        .unwrap_err();
    assert_eq!(spent.code(), Code::Unauthenticated, "{spent:?}");
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "{done}");
}

async fn access_token_with(app: &TestApp, email: &str, password: &str) -> String {
    app.auth()
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}
