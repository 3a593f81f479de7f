//! The REST API's docs page (issue 22): Swagger UI over the generated OpenAPI document at
//! `/api/v1/docs/` through the real Envoy, its files served by the console listener
//! (docs/api-docs.md). Chromium (tests/clients/api_docs.mjs) must find every route of the
//! document on the page, ask nothing of any other origin, and run under the page's
//! Content-Security-Policy without a violation. A screenshot goes to
//! `data/test-artifacts/console/api-docs.png`.

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use serde_json::Value;

use crate::common::{Options, TestApp, envoy::Envoy, free_port, node::build_workspaces, repo_root};

/// Only prevents a hung browser from hanging the suite.
const DEADLINE: Duration = Duration::from_secs(180);

/// "METHOD /path" of every operation in the committed OpenAPI document.
fn documented_routes(document: &Value) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_lists_every_route_and_loads_nothing_from_elsewhere() {
    tokio::task::spawn_blocking(build_workspaces).await.unwrap();
    let console_port = free_port();
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("CONSOLE_ADDR", format!("127.0.0.1:{console_port}")),
            (
                "CONSOLE_DIR",
                repo_root().join("console/dist").display().to_string(),
            ),
        ],
        ..Options::default()
    })
    .await;
    let envoy = Envoy::start_with_console(app.addr.port(), console_port).await;
    let origin = envoy.url("");
    let committed = std::fs::read(repo_root().join("sdk/openapi/openapi.json")).unwrap();
    let document: Value = serde_json::from_slice(&committed).unwrap();

    // Plain HTTP first: the redirect, the headers, the document beside the page.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = http.get(envoy.url("/api/v1/docs")).send().await.unwrap();
    assert!(bare.status().is_redirection(), "{bare:?}");
    assert_eq!(
        bare.headers()["location"],
        envoy.url("/api/v1/docs/").as_str()
    );
    let page = http.get(envoy.url("/api/v1/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("swagger-ui-bundle.js"));
    let beside = http
        .get(envoy.url("/api/v1/docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(beside.status(), 200);
    assert_eq!(
        beside.bytes().await.unwrap().as_ref(),
        committed.as_slice(),
        "the page's document is not the committed one: rebuild (npm run build)"
    );
    // Only GET reaches the console listener; anything else is the REST API's (unknown route).
    let post = http
        .post(envoy.url("/api/v1/docs/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404, "{post:?}");

    // Then the page itself, in Chromium.
    let shots = repo_root().join("data/test-artifacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/clients/api_docs.mjs"))
        .arg(&origin)
        .arg(&shots)
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the docs page test hung")
        .unwrap();
    assert!(
        output.status.success(),
        "api_docs.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|line| line.starts_with(b"{"))
            .expect("a JSON report"),
    )
    .unwrap();
    assert_eq!(report["finalUrl"], envoy.url("/api/v1/docs/"), "{report}");
    let shown: BTreeSet<String> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let documented = documented_routes(&document);
    assert!(documented.len() > 40, "{documented:?}");
    assert_eq!(
        documented.difference(&shown).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes of the document the page does not show"
    );
    let elsewhere: Vec<&Value> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|url| !url.as_str().unwrap().starts_with(&format!("{origin}/")))
        .filter(|url| !url.as_str().unwrap().starts_with("data:"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "requests to other origins: {elsewhere:?}"
    );
    assert_eq!(report["cspViolations"], serde_json::json!([]), "{report}");
    let failures: Vec<&Value> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let m = m.as_str().unwrap();
            m.starts_with("failed:") || m.starts_with("error:")
        })
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}
