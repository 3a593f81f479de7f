//! API-key scopes, RPC by RPC (issue 18, item 3).
//!
//! The expectations below are written out by hand from the README's scopes
//! table (not read from the server's own table): for every scope, a key
//! holding only that scope calls every RPC of the descriptor, and each call
//! is either let through (whatever the handler then answers for an empty
//! request) or PERMISSION_DENIED with the ErrorInfo reason SCOPE_INSUFFICIENT
//! naming the scope the RPC needs. An RPC added to the contract without an
//! expectation here fails the test. Then the rules of key creation: never
//! more than the creator's scopes, unknown names refused, old keys without
//! scopes keep full access.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use prost::Message;
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

use fileorganizer::{
    pb::fileorganizer::v1::{self as pb, file_service_client::FileServiceClient},
    schema::{api_keys, audit_log},
};

use crate::common::{PASSWORD, TestApp, api_key, assert_code, bad_field, bearer, reason, tree};

/// What every RPC needs: `public` (no credential), `any` (any valid
/// credential) or the one scope.
const EXPECTED: &[(&str, &str)] = &[
    ("AuthService/Register", "public"),
    ("AuthService/Login", "public"),
    ("AuthService/RefreshToken", "public"),
    ("AuthService/Logout", "account"),
    ("AuthService/GetCurrentUser", "any"),
    ("AuthService/UpdateCurrentUser", "account"),
    ("AuthService/CreateApiKey", "keys"),
    ("AuthService/ListApiKeys", "keys"),
    ("AuthService/RevokeApiKey", "keys"),
    ("SystemService/GetHealth", "public"),
    ("SystemService/GetStatus", "any"),
    ("SystemService/GetRateLimitStatus", "admin"),
    ("SystemService/ResetRateLimit", "admin"),
    ("SystemService/ListAuditEvents", "admin"),
    ("OperationService/CreateOperation", "operations.write"),
    ("OperationService/GetOperation", "operations.read"),
    ("OperationService/ListOperations", "operations.read"),
    ("OperationService/CancelOperation", "operations.write"),
    ("OperationService/ApplyOperation", "operations.write"),
    ("OperationService/UndoOperation", "operations.write"),
    ("OperationService/WatchOperation", "operations.read"),
    ("OperationService/CreateWatchToken", "operations.read"),
    ("AutomationService/CreateAutomation", "operations.write"),
    ("AutomationService/GetAutomation", "operations.read"),
    ("AutomationService/ListAutomations", "operations.read"),
    ("AutomationService/UpdateAutomation", "operations.write"),
    ("AutomationService/DeleteAutomation", "operations.write"),
    ("AutomationService/PauseAutomation", "operations.write"),
    ("AutomationService/ResumeAutomation", "operations.write"),
    ("FileService/UploadFile", "files.write"),
    ("FileService/UploadSmallFile", "files.write"),
    ("FileService/ListDirectory", "files.read"),
    ("FileService/DownloadFile", "files.read"),
    ("FileService/DownloadArchive", "files.read"),
    ("FileService/DeleteFile", "files.write"),
    ("FileService/ListTrash", "files.read"),
    ("FileService/RestoreFile", "files.write"),
    ("FileService/EmptyTrash", "files.write"),
    ("FileService/ListFileRecords", "operations.read"),
    ("FileService/SearchFiles", "files.read"),
    ("FileService/ListCategories", "files.read"),
    ("FileService/CreateCategory", "files.write"),
    ("FileService/UpdateCategory", "files.write"),
    ("FileService/DeleteCategory", "files.write"),
    ("FileService/UploadRawFile", "files.write"),
    ("FileService/CreateUpload", "files.write"),
    ("FileService/GetUpload", "files.write"),
    ("FileService/AppendUpload", "files.write"),
    ("FileService/FinishUpload", "files.write"),
    ("FileService/CancelUpload", "files.write"),
    ("FileService/ImportArchive", "files.write"),
    ("ReportService/GetOperationReport", "operations.read"),
    ("ReportService/ListDuplicateGroups", "operations.read"),
    ("ReportService/ExportReport", "operations.read"),
    ("ReportService/GetUsageSummary", "operations.read"),
    ("RuleService/CreateRule", "files.write"),
    ("RuleService/GetRule", "files.read"),
    ("RuleService/ListRules", "files.read"),
    ("RuleService/UpdateRule", "files.write"),
    ("RuleService/DeleteRule", "files.write"),
    ("RuleService/PreviewRules", "files.read"),
];

const SCOPES: [&str; 7] = [
    "files.read",
    "files.write",
    "operations.read",
    "operations.write",
    "keys",
    "account",
    "admin",
];

/// `Service/Method` of every RPC in the descriptor.
fn contract() -> BTreeSet<String> {
    let set =
        prost_types::FileDescriptorSet::decode(fileorganizer::pb::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "fileorganizer.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .map(move |m| format!("{}/{}", s.name(), m.name()))
        })
        .collect()
}

async fn new_key(
    app: &TestApp,
    token: &str,
    scopes: &[&str],
) -> Result<pb::CreateApiKeyResponse, Status> {
    new_key_with(app, bearer(key_request(scopes), token)).await
}

fn key_request(scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        api_key: Some(pb::ApiKey {
            display_name: format!("key {}", uuid::Uuid::new_v4().simple()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
    }
}

async fn new_key_with(
    app: &TestApp,
    request: tonic::Request<pb::CreateApiKeyRequest>,
) -> Result<pb::CreateApiKeyResponse, Status> {
    app.auth()
        .create_api_key(request)
        .await
        .map(|r| r.into_inner())
}

/// An admin (so the admin RPCs turn on scopes alone) and their token.
async fn admin(app: &TestApp) -> (String, String) {
    let email = TestApp::email("scoped-admin");
    app.register(&email).await;
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();
    let token = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    (email, token)
}

/// Whether the auth layer refused the call for want of a scope; if so, the
/// ErrorInfo names `scope`.
fn refused_for_scope(result: &Result<(), Status>, rpc: &str, scope: &str) -> bool {
    let Err(status) = result else {
        return false;
    };
    if status.code() != Code::PermissionDenied || reason(status) != "SCOPE_INSUFFICIENT" {
        return false;
    }
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        info.metadata.get("scope").map(String::as_str),
        Some(scope),
        "{rpc}"
    );
    assert!(
        status.message().contains(scope) && status.message().contains(rpc),
        "{rpc}: the message names neither the RPC nor the scope: {}",
        status.message()
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_opens_exactly_its_rpcs() {
    let app = TestApp::spawn().await;
    let expected: BTreeSet<String> = EXPECTED.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(expected.len(), EXPECTED.len(), "an RPC is listed twice");
    assert_eq!(expected, contract(), "EXPECTED and the descriptor disagree");

    let (_, token) = admin(&app).await;
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();
    // One key per scope, one with all of them, and one without (the old
    // kind: the role's full access).
    let mut keys: Vec<(String, String)> = Vec::new();
    for scope in SCOPES {
        let created = new_key(&app, &token, &[scope]).await.unwrap();
        assert_eq!(created.api_key.unwrap().scopes, [scope]);
        keys.push((scope.to_string(), created.secret));
    }
    let all = new_key(&app, &token, &SCOPES).await.unwrap().secret;
    let unscoped = new_key(&app, &token, &[]).await.unwrap();
    assert!(unscoped.api_key.as_ref().unwrap().scopes.is_empty());

    let mut rows = Vec::new();
    for (rpc, needs) in EXPECTED.iter().filter(|(_, n)| *n != "public") {
        let path = format!("/fileorganizer.v1.{rpc}");
        for (held, secret) in &keys {
            let answer = crate::hostile::call(&channel, &path, Vec::new(), secret).await;
            let refused = refused_for_scope(&answer, rpc, needs);
            let should = *needs != "any" && needs != held;
            assert_eq!(
                refused, should,
                "{rpc} (needs {needs}) with a key holding only {held}: {answer:?}"
            );
            rows.push(format!(
                "{rpc} {held} {}",
                if refused { "denied" } else { "allowed" }
            ));
        }
        for (label, secret) in [("all scopes", &all), ("no scopes", &unscoped.secret)] {
            let answer = crate::hostile::call(&channel, &path, Vec::new(), secret).await;
            assert!(
                !refused_for_scope(&answer, rpc, needs),
                "{rpc} with a key of {label}: {answer:?}"
            );
        }
    }
    // 57 RPCs need a credential, 7 scopes each.
    assert_eq!(rows.len(), 57 * SCOPES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_cannot_write_delete_or_mint_keys() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("read-only")).await;
    let root = app
        .state
        .config
        .storage_root
        .join(&session.user.as_ref().unwrap().id);
    tree::write(&root, "keep/me.txt", b"precious");
    let read_only = new_key(&app, &session.access_token, &["files.read"])
        .await
        .unwrap()
        .secret;
    let mut files = FileServiceClient::new(
        Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    );
    // Reading works.
    let listed = files
        .list_directory(api_key(
            pb::ListDirectoryRequest {
                path: "keep".into(),
                ..Default::default()
            },
            &read_only,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 1);
    // The probe's three writes are refused, naming the scope.
    let delete = assert_code(
        files
            .delete_file(api_key(
                pb::DeleteFileRequest {
                    path: "keep/me.txt".into(),
                },
                &read_only,
            ))
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&delete), "SCOPE_INSUFFICIENT");
    assert!(delete.message().contains("files.write"), "{delete:?}");
    let empty = assert_code(
        files
            .empty_trash(api_key(pb::EmptyTrashRequest::default(), &read_only))
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&empty), "SCOPE_INSUFFICIENT");
    let mint = assert_code(
        new_key_with(&app, api_key(key_request(&[]), &read_only)).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&mint), "SCOPE_INSUFFICIENT");
    assert_eq!(
        std::fs::read(root.join("keep/me.txt")).unwrap(),
        b"precious"
    );
    // Refusals are audited once per user, RPC and window, however often
    // they are retried.
    for _ in 0..3 {
        let retry = files
            .delete_file(api_key(
                pb::DeleteFileRequest {
                    path: "keep/me.txt".into(),
                },
                &read_only,
            ))
            .await;
        assert_code(retry, Code::PermissionDenied);
    }
    let mut conn = app.db().await;
    let rows: Vec<(Option<String>, serde_json::Value)> = audit_log::table
        .filter(audit_log::action.eq("authorization.denied"))
        .order(audit_log::id.asc())
        .select((audit_log::target, audit_log::detail))
        .load(&mut conn)
        .await
        .unwrap();
    let targets: Vec<_> = rows
        .iter()
        .map(|(t, _)| t.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        targets,
        [
            "FileService.DeleteFile",
            "FileService.EmptyTrash",
            "AuthService.CreateApiKey"
        ]
    );
    assert_eq!(rows[0].1["scope"], "files.write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_gets_more_than_its_creator() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("creator")).await;
    let token = &session.access_token;
    let creator = new_key(&app, token, &["keys", "files.read"])
        .await
        .unwrap()
        .secret;
    let by_key = |scopes: &[&str]| new_key_with(&app, api_key(key_request(scopes), &creator));

    // A subset: granted as asked (duplicates folded, canonical order).
    let narrower = by_key(&["files.read", "files.read"]).await.unwrap();
    assert_eq!(narrower.api_key.unwrap().scopes, ["files.read"]);
    // A scope the creator lacks: refused, naming it.
    let wider = assert_code(
        by_key(&["files.read", "files.write"]).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&wider), "SCOPE_INSUFFICIENT");
    let info = wider.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["scope"], "files.write");
    // No scopes: all of the creator's, written out, never full access.
    let same = by_key(&[]).await.unwrap();
    assert_eq!(same.api_key.unwrap().scopes, ["files.read", "keys"]);
    let denied = assert_code(
        FileServiceClient::new(
            Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect_lazy(),
        )
        .delete_file(api_key(
            pb::DeleteFileRequest {
                path: "x.txt".into(),
            },
            &same.secret,
        ))
        .await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&denied), "SCOPE_INSUFFICIENT");

    // Unknown names are invalid, whoever asks.
    for bad in ["files.delete", "FILES.READ", "read:files", "", "*"] {
        let status = assert_code(new_key(&app, token, &[bad]).await, Code::InvalidArgument);
        assert_eq!(bad_field(&status), "api_key.scopes", "{bad:?}");
    }
    // A user is no admin: the admin scope cannot be granted by one.
    let admin_scope = assert_code(
        new_key(&app, token, &["admin"]).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&admin_scope), "SCOPE_INSUFFICIENT");
    // A full-access session may grant any of its role's scopes.
    let wide = new_key(&app, token, &["files.write", "account"])
        .await
        .unwrap();
    assert_eq!(wide.api_key.unwrap().scopes, ["files.write", "account"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_keys_keep_full_access_and_unknown_stored_scopes_grant_nothing() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("legacy")).await;
    let unscoped = new_key(&app, &session.access_token, &[]).await.unwrap();
    let odd = new_key(&app, &session.access_token, &[]).await.unwrap();
    // A key stored before scopes were enforced, with a name that is not a
    // scope (it was accepted then), and not used since.
    let mut conn = app.db().await;
    diesel::update(
        api_keys::table.filter(api_keys::prefix.eq(&odd.api_key.as_ref().unwrap().prefix)),
    )
    .set(api_keys::scopes.eq(vec![Some("read:files".to_string())]))
    .execute(&mut conn)
    .await
    .unwrap();
    let files = || {
        FileServiceClient::new(
            Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect_lazy(),
        )
    };
    let list = |key: String| {
        let mut client = files();
        async move {
            client
                .list_trash(api_key(pb::ListTrashRequest::default(), &key))
                .await
        }
    };
    list(unscoped.secret.clone())
        .await
        .expect("an old key keeps full access");
    files()
        .empty_trash(api_key(pb::EmptyTrashRequest::default(), &unscoped.secret))
        .await
        .expect("including writes");
    let status = assert_code(list(odd.secret.clone()).await, Code::PermissionDenied);
    assert_eq!(reason(&status), "SCOPE_INSUFFICIENT");
    // It still authenticates: who am I needs no scope.
    app.auth()
        .get_current_user(api_key(pb::GetCurrentUserRequest {}, &odd.secret))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rpcs_need_the_role_and_the_scope() {
    let app = TestApp::spawn().await;
    let user = app.register(&TestApp::email("plain")).await;
    let (_, admin_token) = admin(&app).await;
    let audit = |request: tonic::Request<pb::ListAuditEventsRequest>| {
        let mut client = app.system();
        async move { client.list_audit_events(request).await }
    };
    // A user, fully authorized otherwise: the role is missing.
    let status = assert_code(
        audit(bearer(
            pb::ListAuditEventsRequest::default(),
            &user.access_token,
        ))
        .await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "PERMISSION_DENIED");
    // An admin's session and admin key pass; the admin's files.read key does not.
    audit(bearer(pb::ListAuditEventsRequest::default(), &admin_token))
        .await
        .unwrap();
    let admin_key = new_key(&app, &admin_token, &["admin"])
        .await
        .unwrap()
        .secret;
    audit(api_key(pb::ListAuditEventsRequest::default(), &admin_key))
        .await
        .unwrap();
    let reader = new_key(&app, &admin_token, &["files.read"])
        .await
        .unwrap()
        .secret;
    let status = assert_code(
        audit(api_key(pb::ListAuditEventsRequest::default(), &reader)).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "SCOPE_INSUFFICIENT");
}
