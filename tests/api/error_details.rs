//! What a client reads from a refusal, one representative of each kind, as
//! committed snapshots (`tests/api/snapshots/api__error_details__*.snap`):
//! a change in a status's code, message, ErrorInfo (reason, domain,
//! metadata), BadRequest or RetryInfo fails here with a diff to review.
//! Other tests check behaviour; these pin the wording and the details.
//! How to review and accept a change: `tests/README.md`.

use fileorganizer::pb::fileorganizer::v1::{self as pb, upload_file_request::Data};
use tonic::{Code, Request, Status};

use crate::{
    common::{Options, PASSWORD, TestApp, api_key, assert_code, bearer, status::render, tree},
    files::{category, create_category, delete, files, set_quota, small_request, upload_small},
    operations::{User, organize, user},
    rules::{create_rule, move_to, rule, rules},
    walks::deep_tree,
};

/// Asserts the snapshot `name` of `result`'s refusal, which must have `code`.
fn snapshot<T: std::fmt::Debug>(
    name: &str,
    result: Result<T, Status>,
    code: Code,
    redact: &[(&str, &str)],
) {
    let status = assert_code(result, code);
    insta::assert_snapshot!(name, render(&status, redact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_name_the_field_of_each_kind() {
    let app = TestApp::spawn().await;
    let u = user(&app, "invalid").await;
    tree::write(&u.root, "inbox/a.txt", b"a");
    let invalid = Code::InvalidArgument;
    let list = |request: pb::ListDirectoryRequest| {
        let (mut client, request) = (files(&app), bearer(request, &u.token));
        async move { client.list_directory(request).await }
    };
    let path = |path: &str| pb::ListDirectoryRequest {
        path: path.into(),
        ..Default::default()
    };
    snapshot(
        "path_leaving_the_root",
        list(path("../x")).await,
        invalid,
        &[],
    );
    snapshot(
        "path_into_the_trash",
        list(path(".trash")).await,
        invalid,
        &[],
    );
    let garbage_token = pb::ListDirectoryRequest {
        page_token: "garbage".into(),
        ..Default::default()
    };
    snapshot("page_token", list(garbage_token).await, invalid, &[]);
    let create = |operation: pb::Operation| {
        let mut client = app.operations();
        let request = pb::CreateOperationRequest {
            operation: Some(operation),
            request_id: String::new(),
        };
        let request = bearer(request, &u.token);
        async move { client.create_operation(request).await }
    };
    let unknown_enum = pb::Operation {
        duplicate_policy: 99,
        ..organize("inbox")
    };
    snapshot("enum_value", create(unknown_enum).await, invalid, &[]);
    let template = pb::Operation {
        layout_template: "{category}/{nonsense}".into(),
        ..organize("inbox")
    };
    snapshot("layout_template", create(template).await, invalid, &[]);
    let category_glob = category("Scans", &[], &["scan[0-9"]);
    snapshot(
        "category_glob",
        create_category(&app, &u, category_glob).await,
        invalid,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_already_exists() {
    let app = TestApp::spawn().await;
    let u = user(&app, "exists").await;
    let missing = pb::GetOperationRequest {
        name: format!("operations/{}", uuid::Uuid::new_v4()),
    };
    let result = app
        .operations()
        .get_operation(bearer(missing, &u.token))
        .await;
    snapshot("not_found_operation", result, Code::NotFound, &[]);
    snapshot(
        "not_found_path",
        delete(&app, &u, "docs/none.txt").await,
        Code::NotFound,
        &[],
    );
    upload_small(&app, &u, small_request("docs/a.txt", b"first"))
        .await
        .unwrap();
    snapshot(
        "already_exists_file",
        upload_small(&app, &u, small_request("docs/a.txt", b"second")).await,
        Code::AlreadyExists,
        &[],
    );
    let email = TestApp::email("taken");
    app.register(&email).await;
    let again = app
        .auth()
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await;
    snapshot(
        "already_exists_email",
        again,
        Code::AlreadyExists,
        &[(&email, "<email>")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_denied_for_the_admin_role_and_for_a_keys_scope() {
    let app = TestApp::spawn().await;
    let u = user(&app, "denied").await;
    let request = pb::GetRateLimitStatusRequest {
        user_id: uuid::Uuid::new_v4().to_string(),
    };
    let result = app
        .system()
        .get_rate_limit_status(bearer(request, &u.token))
        .await;
    snapshot(
        "permission_denied_admin",
        result,
        Code::PermissionDenied,
        &[],
    );
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: "read only".into(),
                    scopes: vec!["files.read".into()],
                    ..Default::default()
                }),
            },
            &u.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let write = pb::UploadSmallFileRequest {
        path: "new.txt".into(),
        content: b"no".to_vec(),
        ..Default::default()
    };
    let result = files(&app).upload_small_file(api_key(write, &key)).await;
    snapshot(
        "permission_denied_scope",
        result,
        Code::PermissionDenied,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_variants() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("unauth");
    let session = app.register(&email).await;
    let me = |request: Request<pb::GetCurrentUserRequest>| {
        let mut client = app.auth();
        async move { client.get_current_user(request).await }
    };
    let none = Code::Unauthenticated;
    let anonymous = Request::new(pb::GetCurrentUserRequest {});
    snapshot("credentials_missing", me(anonymous).await, none, &[]);
    let token = bearer(pb::GetCurrentUserRequest {}, "not.a.token");
    snapshot("token_invalid", me(token).await, none, &[]);
    let key = api_key(pb::GetCurrentUserRequest {}, "fo_abcdefgh_wrongsecret");
    snapshot("api_key_invalid", me(key).await, none, &[]);
    let login = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: "wrong password".into(),
        })
        .await;
    snapshot("invalid_credentials", login, none, &[(&email, "<email>")]);
    let refresh = |refresh_token: String| {
        let mut client = app.auth();
        async move {
            let request = pb::RefreshTokenRequest { refresh_token };
            client.refresh_token(request).await
        }
    };
    snapshot(
        "refresh_token_invalid",
        refresh("garbage".into()).await,
        none,
        &[],
    );
    refresh(session.refresh_token.clone()).await.unwrap();
    snapshot(
        "refresh_token_reused",
        refresh(session.refresh_token).await,
        none,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_is_told_when_to_retry() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_API", "2".into())],
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("limited")).await.access_token;
    let mut refused = None;
    for _ in 0..3 {
        let call = app
            .auth()
            .get_current_user(bearer(pb::GetCurrentUserRequest {}, &token))
            .await;
        refused = call.err();
    }
    let refused = refused.expect("the third call in a window is refused");
    let retry = tonic_types::StatusExt::get_error_details(&refused)
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo with a delay");
    // The message names the same delay as the RetryInfo.
    let retry_in = format!("retry in {}s", retry.as_secs());
    snapshot(
        "rate_limited",
        Err::<(), _>(refused),
        Code::ResourceExhausted,
        &[(&retry_in, "retry in <delay>s")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_upload_size_refusals() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MAX_UPLOAD_BYTES", "1024".into())],
        ..Default::default()
    })
    .await;
    let u = user(&app, "quota").await;
    snapshot(
        "upload_too_large",
        upload_small(&app, &u, small_request("a.bin", &[7; 1025])).await,
        Code::ResourceExhausted,
        &[],
    );
    set_quota(&app, &u, 100).await;
    let metadata = pb::UploadFileMetadata {
        path: "b.bin".into(),
        size_bytes: 500,
        ..Default::default()
    };
    let stream = tokio_stream::iter([pb::UploadFileRequest {
        data: Some(Data::Metadata(metadata)),
    }]);
    let over = files(&app).upload_file(bearer(stream, &u.token)).await;
    snapshot("quota_exceeded", over, Code::ResourceExhausted, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_preconditions_of_deep_trees_and_the_trash() {
    let app = TestApp::spawn().await;
    let u = user(&app, "precondition").await;
    deep_tree(&u.root.join("too-deep"), 4100);
    let precondition = Code::FailedPrecondition;
    snapshot(
        "tree_too_deep",
        delete(&app, &u, "too-deep").await,
        precondition,
        &[],
    );
    trash_preconditions(&app, &u).await;
}

/// A write with a stale etag is ABORTED (AIP-154), not FAILED_PRECONDITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_etag_is_aborted() {
    let app = TestApp::spawn().await;
    let u = user(&app, "etag").await;
    let created = create_rule(&app, &u, rule("r", Vec::new(), move_to("x/{name}")))
        .await
        .unwrap();
    let update = pb::UpdateRuleRequest {
        rule: Some(pb::Rule {
            display_name: "renamed".into(),
            ..created.clone()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    };
    rules(&app)
        .update_rule(bearer(update.clone(), &u.token))
        .await
        .unwrap();
    let stale = rules(&app).update_rule(bearer(update, &u.token)).await;
    let id = created.name.trim_start_matches("rules/").to_string();
    snapshot("etag_mismatch", stale, Code::Aborted, &[(&id, "<id>")]);
}

/// A trash item whose bytes left `.trash` on disk, and a `.trash` that is
/// not a folder.
async fn trash_preconditions(app: &TestApp, u: &User) {
    upload_small(app, u, small_request("gone.txt", b"bytes"))
        .await
        .unwrap();
    let item = delete(app, u, "gone.txt").await.unwrap();
    std::fs::remove_dir_all(u.root.join(".trash")).unwrap();
    let restore = pb::RestoreFileRequest {
        name: item.name,
        ..Default::default()
    };
    let result = files(app).restore_file(bearer(restore, &u.token)).await;
    snapshot("trash_item_gone", result, Code::FailedPrecondition, &[]);
    tree::write(&u.root, ".trash", b"not a folder");
    tree::write(&u.root, "doomed.txt", b"bytes");
    snapshot(
        "trash_not_a_folder",
        delete(app, u, "doomed.txt").await,
        Code::FailedPrecondition,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_hash_that_does_not_match_is_data_loss() {
    let app = TestApp::spawn().await;
    let u = user(&app, "dataloss").await;
    let request = pb::UploadSmallFileRequest {
        content_hash: blake3::hash(b"something else").to_hex().to_string(),
        ..small_request("checked.txt", b"content")
    };
    snapshot(
        "content_hash_mismatch",
        upload_small(&app, &u, request).await,
        Code::DataLoss,
        &[],
    );
}
