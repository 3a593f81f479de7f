//! REST through the real Envoy sidecar: the seed's JSON paths keep working.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, envoy::Envoy};

const SECURITY_HEADERS: &[&str] = &[
    "x-content-type-options",
    "x-frame-options",
    "strict-transport-security",
    "content-security-policy",
    "referrer-policy",
    "permissions-policy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_me_over_rest() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let email = TestApp::email("rest");

    let registered = http
        .post(envoy.url("/api/v1/auth/register"))
        .json(&json!({ "email": email, "password": PASSWORD, "display_name": "Rest User" }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::OK);
    let body: Value = registered.json().await.unwrap();
    // snake_case names, as the seed's clients read them.
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert_eq!(body["user"]["email"], email);
    // Primitive fields are printed even at their default value.
    assert_eq!(body["user"]["storage_used_bytes"], "0");

    let login = http
        .post(envoy.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    let token = login["access_token"].as_str().unwrap();

    for path in ["/api/v1/users/me", "/api/v1/auth/me"] {
        let me = http
            .get(envoy.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK, "{path}");
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["email"], email);
        assert_eq!(me["display_name"], "Rest User");
    }

    // Without a token: 401 with a JSON google.rpc.Status body.
    let anonymous = http
        .get(envoy.url("/api/v1/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let error: Value = anonymous.json().await.unwrap();
    assert_eq!(error["code"], 16);
    assert_eq!(error["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(error["details"][0]["domain"], "fileorganizer.v1");

    // Wrong password: 401; duplicate email: 409; bad input: 400 naming the field.
    let wrong = http
        .post(envoy.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let duplicate = http
        .post(envoy.url("/api/v1/auth/register"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let weak = http
        .post(envoy.url("/api/v1/auth/register"))
        .json(&json!({ "email": TestApp::email("weak"), "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let weak: Value = weak.json().await.unwrap();
    let violation = weak["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap();
    assert_eq!(violation["field_violations"][0]["field"], "password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_has_security_headers_and_unknown_routes_are_refused() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();

    let health = http.get(envoy.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    for header in SECURITY_HEADERS {
        assert!(health.headers().contains_key(*header), "{header} missing");
    }
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "HEALTH_STATE_HEALTHY");

    let status = http.get(envoy.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::UNAUTHORIZED);

    let unknown = http
        .get(envoy.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown_param = http.get(envoy.url("/health?debug=1")).send().await.unwrap();
    assert_eq!(unknown_param.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_grpc_passes_through_envoy() {
    use fileorganizer::pb::fileorganizer::v1::{
        self as pb, system_service_client::SystemServiceClient,
    };
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let channel = tonic::transport::Channel::from_shared(envoy.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = SystemServiceClient::new(channel.clone())
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    let probe = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.status, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_over_rest_with_server_sent_progress() {
    use crate::common::{Options, tree};
    let app = TestApp::spawn_with(Options {
        env: vec![("MOVES_PER_SECOND", "400".into())],
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let session = app.register(&TestApp::email("rest-ops")).await;
    let token = session.access_token;
    let root = app.state.config.storage_root.join(session.user.unwrap().id);
    for i in 0..200 {
        tree::write(&root, &format!("in/f{i}.txt"), format!("{i}").as_bytes());
    }

    let created = http
        .post(envoy.url("/api/v1/operations"))
        .bearer_auth(&token)
        .json(&json!({ "source_path": "in", "kind": "OPERATION_KIND_ORGANIZE" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().await.unwrap();
    let name = created["name"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "OPERATION_STATE_QUEUED");
    assert_eq!(created["counters"]["files_moved"], "0");

    // Progress as server-sent events until the end.
    let watch = http
        .get(envoy.url(&format!("/api/v1/{name}:watch")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    assert!(
        watch.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = tokio::time::timeout(std::time::Duration::from_secs(60), watch.text())
        .await
        .unwrap()
        .unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events.len() >= 2, "{body}");
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
    assert!(moved.windows(2).all(|w| w[0] <= w[1]), "{moved:?}");
    let last = events.last().unwrap();
    assert_eq!(last["state"], "OPERATION_STATE_SUCCEEDED");
    assert_eq!(last["counters"]["files_moved"], "200");

    let fetched: Value = http
        .get(envoy.url(&format!("/api/v1/{name}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["state"], "OPERATION_STATE_SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_hides_another_users_operation_and_bad_input_names_its_field() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let owner = crate::operations::user(&app, "rest-ops").await;
    let token = owner.token.clone();
    crate::common::tree::write(&owner.root, "in/a.txt", b"a");
    let name = crate::operations::create(&app, &owner, crate::operations::organize("in"))
        .await
        .name;

    // Another user: 404 with a JSON error, as for an id that does not exist.
    let other = app
        .register(&TestApp::email("rest-other"))
        .await
        .access_token;
    let foreign = http
        .get(envoy.url(&format!("/api/v1/{name}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let error: Value = foreign.json().await.unwrap();
    assert_eq!(error["code"], 5, "{error}");
    // Bad input names its field: 400.
    let bad = http
        .post(envoy.url("/api/v1/operations"))
        .bearer_auth(&token)
        .json(&json!({ "source_path": "../etc" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("operation.source_path"),
        "{bad}"
    );
}

/// Enum spellings users type (docs/rest.md, "Enum values in URLs and bodies"): any case of the
/// full name for every enum (query strings and bodies), the short names of ReportFormat, and a
/// 400 for short names of the other enums; responses always print the full name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_spellings_through_envoy() {
    use crate::common::tree;
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let session = app.register(&TestApp::email("rest-enums")).await;
    let token = session.access_token;
    let root = app.state.config.storage_root.join(session.user.unwrap().id);
    tree::write(&root, "in/a.txt", b"a");
    tree::write(&root, "in/b.txt", b"b");

    // A body with a lower-case full name; the answer prints the canonical one.
    let created = http
        .post(envoy.url("/api/v1/operations"))
        .bearer_auth(&token)
        .json(&json!({
            "source_path": "in", "kind": "operation_kind_organize", "dry_run": true,
            "conflict_policy": "Conflict_Policy_Skip", "duplicate_policy": "duplicate_policy_report_only",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["kind"], "OPERATION_KIND_ORGANIZE");
    assert_eq!(created["conflict_policy"], "CONFLICT_POLICY_SKIP");
    let name = created["name"].as_str().unwrap().to_string();
    let id = name.trim_start_matches("operations/").to_string();
    let get = |path: String| http.get(envoy.url(&path)).bearer_auth(&token).send();
    for _ in 0..600 {
        let op: Value = get(format!("/api/v1/{name}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if op["state"] == "OPERATION_STATE_PLANNED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Query strings: lower-case full names of every kind of filter.
    for query in [
        "state=operation_state_planned",
        "kind=Operation_Kind_Organize",
        "state=OPERATION_STATE_PLANNED",
    ] {
        let listed = get(format!("/api/v1/operations?{query}")).await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{query}");
        let listed: Value = listed.json().await.unwrap();
        assert_eq!(listed["operations"][0]["name"], name.as_str(), "{query}");
    }
    let records = get(format!(
        "/api/v1/{name}/files?status=file_record_status_planned"
    ))
    .await
    .unwrap();
    assert_eq!(records.status(), StatusCode::OK);
    let records: Value = records.json().await.unwrap();
    assert_eq!(records["file_records"].as_array().unwrap().len(), 2);
    assert_eq!(
        records["file_records"][0]["status"],
        "FILE_RECORD_STATUS_PLANNED"
    );

    // ReportFormat: the short names, in any case, and the full ones.
    for (format, content_type) in [
        ("csv", "text/csv"),
        ("CSV", "text/csv"),
        ("json", "application/json"),
        ("Html", "text/html"),
        ("report_format_json", "application/json"),
        ("REPORT_FORMAT_HTML", "text/html"),
    ] {
        let export = get(format!("/api/v1/reports/{id}:export?format={format}"))
            .await
            .unwrap();
        assert_eq!(export.status(), StatusCode::OK, "format={format}");
        let got = export.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(got.starts_with(content_type), "format={format}: {got}");
    }

    // Archive formats and upload conflict policies: any case of the full name, no short name.
    let archive = get("/api/v1/files:downloadArchive?path=in&format=archive_format_tar".into())
        .await
        .unwrap();
    assert_eq!(archive.status(), StatusCode::OK);
    assert!(archive.bytes().await.unwrap().len() >= 1024);
    let upload = http
        .post(envoy.url(
            "/api/v1/files:upload?path=in/c.txt&conflict_policy=file_conflict_policy_skip_if_identical",
        ))
        .bearer_auth(&token)
        .body("c")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::OK);
    for refused in [
        "/api/v1/files:downloadArchive?path=in&format=zip".to_string(),
        "/api/v1/operations?state=planned".to_string(),
        format!("/api/v1/{name}/files?status=planned"),
        format!("/api/v1/reports/{id}:export?format=pdf"),
    ] {
        let answer = get(refused.clone()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{refused}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], 3, "{refused}: {body}");
    }
}
