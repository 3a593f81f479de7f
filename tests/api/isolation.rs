//! Tenant isolation, RPC by RPC: user B naming user A's things.
//!
//! For every RPC whose request carries an identifier or a path (found in the
//! descriptor, not listed by hand), B calls it once with A's identifier and
//! once with a random identifier of the same shape. The two answers must be
//! the same status (code, message and details, with the identifier itself
//! masked), so B cannot tell "exists but not yours" from "does not exist";
//! for lookups that status is NOT_FOUND. A's files, records, trash,
//! categories, keys, profile and session are compared before and after.
//! A few REST routes are checked the same way through the real Envoy.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::{FutureExt, future::BoxFuture};
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationState, auth_service_client::AuthServiceClient, automation::Trigger,
    automation_service_client::AutomationServiceClient, file_service_client::FileServiceClient,
    operation_service_client::OperationServiceClient, report_service_client::ReportServiceClient,
    rule_service_client::RuleServiceClient, system_service_client::SystemServiceClient,
    upload_file_request::Data,
};

use fileorganizer::pb::google::api::HttpBody;

use crate::common::{TestApp, bearer, envoy::Envoy, tree};
use crate::files::{category, create_category, delete, small_request, upload_small};
use crate::operations::{User, create, organize, records, user, wait_for};

/// Request fields (strings) that name something: a resource or a path.
fn names_something(field: &str) -> bool {
    matches!(
        field,
        "name" | "names" | "parent" | "path" | "id" | "user_id" | "operation"
    ) || field.ends_with("_path")
}

/// Every `(Service/Method, field.path)` of the contract whose request has
/// an identifier or path field, nested messages included.
fn identifier_fields() -> BTreeSet<(String, String)> {
    let set =
        prost_types::FileDescriptorSet::decode(fileorganizer::pb::FILE_DESCRIPTOR_SET).unwrap();
    let messages: BTreeMap<String, &prost_types::DescriptorProto> = set
        .file
        .iter()
        .flat_map(|f| {
            f.message_type
                .iter()
                .map(move |m| (format!(".{}.{}", f.package(), m.name()), m))
        })
        .collect();
    fn walk(
        messages: &BTreeMap<String, &prost_types::DescriptorProto>,
        type_name: &str,
        prefix: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let Some(message) = messages.get(type_name) else {
            return;
        };
        for field in &message.field {
            let path = format!("{prefix}{}", field.name());
            match field.r#type() {
                Type::String if names_something(field.name()) => out.push(path),
                Type::Message
                    if depth < 3 && field.type_name().starts_with(".fileorganizer.v1.") =>
                {
                    walk(
                        messages,
                        field.type_name(),
                        &format!("{path}."),
                        depth + 1,
                        out,
                    )
                }
                _ => {}
            }
        }
    }
    let mut found = BTreeSet::new();
    for file in set
        .file
        .iter()
        .filter(|f| f.package() == "fileorganizer.v1")
    {
        for service in &file.service {
            for method in &service.method {
                let mut fields = Vec::new();
                walk(&messages, method.input_type(), "", 0, &mut fields);
                for field in fields {
                    found.insert((format!("{}/{}", service.name(), method.name()), field));
                }
            }
        }
    }
    found
}

type Call = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), Status>> + Send + Sync>;

/// One RPC field probed with A's identifier and with a random one.
struct Probe {
    rpc: &'static str,
    field: &'static str,
    /// A's identifier (or a path that exists only in A's storage).
    owner: String,
    /// An identifier of the same shape that names nothing.
    missing: String,
    /// The code both calls must answer with.
    expect: Code,
    call: Call,
}

fn probe<F, Fut>(
    rpc: &'static str,
    field: &'static str,
    owner: &str,
    missing: &str,
    expect: Code,
    f: F,
) -> Probe
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), Status>> + Send + 'static,
{
    Probe {
        rpc,
        field,
        owner: owner.to_string(),
        missing: missing.to_string(),
        expect,
        call: Arc::new(move |id| f(id).boxed()),
    }
}

/// What a caller can observe of an answer, with the identifier it sent
/// masked (messages echo the name that was asked for).
fn observed(result: &Result<(), Status>, ident: &str) -> String {
    let mask = |s: String| {
        let mut s = s.replace(ident, "<id>");
        if let Some((_, tail)) = ident.rsplit_once('/')
            && !tail.is_empty()
        {
            s = s.replace(tail, "<id>");
        }
        s
    };
    match result {
        Ok(()) => "OK".into(),
        Err(status) => mask(format!(
            "code={:?} message={:?} details={:?}",
            status.code(),
            status.message(),
            status.get_error_details_vec()
        )),
    }
}

fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy()
}

/// First message (or error) of a server stream.
async fn first<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>>,
) -> Result<(), Status> {
    let mut stream = call.await?.into_inner();
    stream.message().await.map(drop)
}

/// Everything of A's that B must not be able to change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    files: BTreeMap<String, tree::Entry>,
    records: Vec<String>,
    operations: Vec<String>,
    trash: String,
    categories: String,
    api_keys: String,
    automations: String,
    profile: (String, String, i64),
}

async fn snapshot(app: &TestApp, a: &User, ops: &[&str]) -> Snapshot {
    let ch = channel(app);
    let files = FileServiceClient::new(ch.clone());
    let mut recs = Vec::new();
    let mut operations = Vec::new();
    for op in ops {
        recs.extend(records(app, op).await.iter().map(|r| format!("{r:?}")));
        let got = OperationServiceClient::new(ch.clone())
            .get_operation(bearer(
                pb::GetOperationRequest {
                    name: op.to_string(),
                },
                &a.token,
            ))
            .await
            .unwrap()
            .into_inner();
        operations.push(format!(
            "{} {:?} {:?} {}",
            got.name, got.state, got.counters, got.undone_by
        ));
    }
    let trash = files
        .clone()
        .list_trash(bearer(pb::ListTrashRequest::default(), &a.token))
        .await
        .unwrap()
        .into_inner();
    let categories = files
        .clone()
        .list_categories(bearer(pb::ListCategoriesRequest::default(), &a.token))
        .await
        .unwrap()
        .into_inner();
    let keys = AuthServiceClient::new(ch.clone())
        .list_api_keys(bearer(pb::ListApiKeysRequest::default(), &a.token))
        .await
        .unwrap()
        .into_inner();
    let automations = AutomationServiceClient::new(ch.clone())
        .list_automations(bearer(pb::ListAutomationsRequest::default(), &a.token))
        .await
        .unwrap()
        .into_inner();
    let me = AuthServiceClient::new(ch)
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &a.token))
        .await
        .unwrap()
        .into_inner();
    Snapshot {
        files: tree::snapshot(&a.root),
        records: recs,
        operations,
        trash: format!("{trash:?}"),
        categories: format!("{categories:?}"),
        api_keys: format!("{keys:?}"),
        automations: format!("{automations:?}"),
        profile: (me.display_name, me.email, me.storage_used_bytes),
    }
}

async fn upload(app: &TestApp, who: &User, path: &str, content: &[u8]) {
    upload_small(app, who, small_request(path, content))
        .await
        .unwrap();
}

async fn trash(app: &TestApp, who: &User, path: &str) -> String {
    delete(app, who, path).await.unwrap().name
}

/// A's world and B, the tenant who goes after it: A has files, a finished
/// organize (records, report, duplicate groups), a planned one, a trash
/// item, a category, an API key and a session; B owns a folder to organize
/// and trash items to restore.
struct Tenants {
    app: TestApp,
    a: User,
    a_session: pb::RegisterResponse,
    a_user: pb::User,
    b: User,
    a_trash: String,
    a_category: String,
    a_key: String,
    /// A's resumable upload session, with 3 of its 6 bytes committed.
    a_upload: String,
    /// A's organizing rule, as created.
    a_rule: pb::Rule,
    done: String,
    planned: String,
    a_automation: String,
    b_trash: Arc<std::sync::Mutex<Vec<String>>>,
    /// A's things before B's calls.
    before: Snapshot,
}

async fn tenants() -> Tenants {
    let app = TestApp::spawn().await;
    let a_session = app.register(&TestApp::email("tenant-a")).await;
    let a_user = a_session.user.clone().unwrap();
    let a = User {
        token: a_session.access_token.clone(),
        root: app.state.config.storage_root.join(&a_user.id),
    };
    let b = user(&app, "tenant-b").await;
    upload(&app, &a, "private/secret.txt", b"A's secret").await;
    upload(&app, &a, "private/dup1.txt", b"same words").await;
    upload(&app, &a, "private/sub/dup2.txt", b"same words").await;
    upload(&app, &a, "private/old.txt", b"old").await;
    upload(&app, &a, "later/plan.pdf", b"planned").await;
    let a_trash = trash(&app, &a, "private/old.txt").await;
    let a_category = create_category(&app, &a, category("Invoices", &["inv"], &[]))
        .await
        .unwrap()
        .name;
    let a_key = AuthServiceClient::new(channel(&app))
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: "a's key".into(),
                    ..Default::default()
                }),
            },
            &a.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap()
        .name;
    let a_upload = a_upload_session(&app, &a).await;
    let a_rule = RuleServiceClient::new(channel(&app))
        .create_rule(bearer(
            pb::CreateRuleRequest {
                rule: Some(a_rule_message()),
            },
            &a.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let done = create(&app, &a, organize("private")).await.name;
    let finished = wait_for(&app, &a, &done, &[OperationState::Succeeded]).await;
    assert_eq!(finished.counters.unwrap().files_moved, 3);
    let planned = create(
        &app,
        &a,
        pb::Operation {
            dry_run: true,
            ..organize("later")
        },
    )
    .await
    .name;
    wait_for(&app, &a, &planned, &[OperationState::Planned]).await;
    let a_automation = AutomationServiceClient::new(channel(&app))
        .create_automation(bearer(
            pb::CreateAutomationRequest {
                automation: Some(yearly("private")),
            },
            &a.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .name;
    upload(&app, &b, "mine/b.txt", b"B's own").await;
    let mut b_trash = Vec::new();
    for i in 0..2 {
        let path = format!("bin/{i}.txt");
        upload(&app, &b, &path, b"B's trash").await;
        b_trash.push(trash(&app, &b, &path).await);
    }
    let before = snapshot(&app, &a, &[&done, &planned]).await;
    Tenants {
        app,
        a,
        a_session,
        a_user,
        b,
        a_trash,
        a_category,
        a_key,
        a_upload,
        a_rule,
        done,
        planned,
        a_automation,
        b_trash: Arc::new(std::sync::Mutex::new(b_trash)),
        before,
    }
}

impl Tenants {
    /// Nothing of A's changed.
    async fn assert_a_unchanged(&self) {
        let now = snapshot(&self.app, &self.a, &[&self.done, &self.planned]).await;
        assert_eq!(now, self.before, "A's things changed");
    }
}

/// Probes under construction: B's token and each group's clients.
struct Probes {
    list: Vec<Probe>,
    token: String,
    ops: OperationServiceClient<Channel>,
    files: FileServiceClient<Channel>,
    reports: ReportServiceClient<Channel>,
    rules: RuleServiceClient<Channel>,
    auth: AuthServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
    automations: AutomationServiceClient<Channel>,
}

impl Probes {
    fn new(t: &Tenants) -> Probes {
        let ch = channel(&t.app);
        Probes {
            list: Vec::new(),
            token: t.b.token.clone(),
            ops: OperationServiceClient::new(ch.clone()),
            files: FileServiceClient::new(ch.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            reports: ReportServiceClient::new(ch.clone()),
            rules: RuleServiceClient::new(ch.clone()),
            auth: AuthServiceClient::new(ch.clone()),
            automations: AutomationServiceClient::new(ch.clone()),
            system: SystemServiceClient::new(ch),
        }
    }
}

/// `probe!(probes; client, rpc, field, owner, missing, code, [env] |c, id, auth| body)`:
/// `body` runs with a fresh clone `c` of `probes.client`, the identifier
/// `id`, `auth`, which wraps a request with B's credentials, and clones of
/// the variables listed in `[env]`. (Left unformatted by rustfmt: one probe
/// reads as one row of the matrix.)
macro_rules! probe {
    ($probes:ident; $client:ident, $rpc:literal, $field:literal, $owner:expr, $missing:expr,
     $code:expr, $([$($env:ident),*])? |$c:ident, $id:ident, $auth:ident| $body:expr) => {{
        let (client, token) = ($probes.$client.clone(), $probes.token.clone());
        $($(let $env = $env.clone();)*)?
        $probes.list.push(probe($rpc, $field, $owner, $missing, $code, move |$id: String| {
            #[allow(unused_mut)]
            let (mut $c, token) = (client.clone(), token.clone());
            $($(let $env = $env.clone();)*)?
            async move {
                let $auth = |message| bearer(message, &token);
                $body
            }
        }));
    }};
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A's finished and planned operations, and their reports.
#[rustfmt::skip::macros(probe)]
fn operation_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let op_id = |name: &str| name.trim_start_matches("operations/").to_string();
    let report = |name: &str| format!("reports/{}", op_id(name));
    for op in [&t.done, &t.planned] {
        let missing = &format!("operations/{}", uuid());
        let nf = Code::NotFound;
        probe!(probes; ops, "OperationService/GetOperation", "name", op, missing, nf, |c, name, auth| {
            c.get_operation(auth(pb::GetOperationRequest { name })).await.map(drop)
        });
        probe!(probes; ops, "OperationService/CancelOperation", "name", op, missing, nf, |c, name, auth| {
            c.cancel_operation(auth(pb::CancelOperationRequest { name })).await.map(drop)
        });
        probe!(probes; ops, "OperationService/ApplyOperation", "name", op, missing, nf, |c, name, auth| {
            c.apply_operation(auth(pb::ApplyOperationRequest { name })).await.map(drop)
        });
        probe!(probes; ops, "OperationService/UndoOperation", "name", op, missing, nf, |c, name, auth| {
            let request = pb::UndoOperationRequest { name, request_id: String::new() };
            c.undo_operation(auth(request)).await.map(drop)
        });
        probe!(probes; ops, "OperationService/WatchOperation", "name", op, missing, nf, |c, name, auth| {
            first(c.watch_operation(auth(pb::WatchOperationRequest { name, ..Default::default() }))).await
        });
        probe!(probes; ops, "OperationService/CreateWatchToken", "name", op, missing, nf, |c, name, auth| {
            c.create_watch_token(auth(pb::CreateWatchTokenRequest { name })).await.map(drop)
        });
        probe!(probes; files, "FileService/ListFileRecords", "parent", op, missing, nf, |c, parent, auth| {
            let request = pb::ListFileRecordsRequest { parent, ..Default::default() };
            c.list_file_records(auth(request)).await.map(drop)
        });
        probe!(probes; files, "FileService/DownloadArchive", "operation", op, missing, nf,
            |c, operation, auth| {
                let request = pb::DownloadArchiveRequest { operation, ..Default::default() };
                first(c.download_archive(auth(request))).await
            });
        probe!(probes; files, "FileService/SearchFiles", "operation", op, missing, nf, |c, operation, auth| {
            let request = pb::SearchFilesRequest {
                operation,
                name_contains: "dup".into(),
                ..Default::default()
            };
            c.search_files(auth(request)).await.map(drop)
        });
        let (owner_report, missing_report) = (&report(op), &report(missing));
        probe!(probes; reports, "ReportService/GetOperationReport", "name", owner_report, missing_report, nf,
            |c, name, auth| {
                c.get_operation_report(auth(pb::GetOperationReportRequest { name })).await.map(drop)
            });
        probe!(probes; reports, "ReportService/ListDuplicateGroups", "parent", owner_report, missing_report,
            nf, |c, parent, auth| {
                let request = pb::ListDuplicateGroupsRequest { parent, ..Default::default() };
                c.list_duplicate_groups(auth(request)).await.map(drop)
            });
        probe!(probes; reports, "ReportService/ExportReport", "name", owner_report, missing_report, nf,
            |c, name, auth| {
                let format = pb::ReportFormat::Json as i32;
                first(c.export_report(auth(pb::ExportReportRequest { name, format }))).await
            });
        // An output-only name is ignored on create: B gets an operation of
        // its own (a dry run of its own folder), never A's.
        probe!(probes; ops, "OperationService/CreateOperation", "operation.name", op, missing, Code::Ok,
            |c, name, auth| {
                let operation = pb::Operation { name: name.clone(), dry_run: true, ..organize("mine") };
                let request = pb::CreateOperationRequest { operation: Some(operation), request_id: String::new() };
                let created = c.create_operation(auth(request)).await?.into_inner();
                assert_ne!(created.name, name, "the client chose the operation's name");
                Ok(())
            });
    }
    probes.list
}

/// Paths always resolve in the caller's own storage.
#[rustfmt::skip::macros(probe)]
fn path_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let (nf, ok) = (Code::NotFound, Code::Ok);
    let (secret, nothing) = (
        "private/Documents/secret.txt",
        "private/Documents/nothing.txt",
    );
    probe!(probes; files, "FileService/DownloadFile", "path", secret, nothing, nf, |c, path, auth| {
        first(c.download_file(auth(pb::DownloadFileRequest { path }))).await
    });
    probe!(probes; files, "FileService/DownloadArchive", "path", "private/Documents", "private/Nothing", nf,
        |c, path, auth| {
            first(c.download_archive(auth(pb::DownloadArchiveRequest { path, ..Default::default() }))).await
        });
    probe!(probes; files, "FileService/ListDirectory", "path", "private/Documents", "private/Nothing", nf,
        |c, path, auth| {
            let request = pb::ListDirectoryRequest { path, ..Default::default() };
            c.list_directory(auth(request)).await.map(drop)
        });
    probe!(probes; files, "FileService/DeleteFile", "path", secret, nothing, nf, |c, path, auth| {
        c.delete_file(auth(pb::DeleteFileRequest { path })).await.map(drop)
    });
    // Uploads to A's path land in B's storage (A's file is untouched: see
    // the snapshot), exactly like uploads to a fresh path.
    probe!(probes; files, "FileService/UploadSmallFile", "path", secret, "private/Documents/fresh.txt", ok,
        |c, path, auth| {
            let request = pb::UploadSmallFileRequest {
                path,
                content: b"B was here".to_vec(),
                ..Default::default()
            };
            c.upload_small_file(auth(request)).await.map(drop)
        });
    probe!(probes; files, "FileService/UploadFile", "metadata.path", "private/Documents/dup1.txt",
        "private/Documents/fresh-stream.txt", ok, |c, path, auth| {
            let metadata = pb::UploadFileMetadata { path, size_bytes: 3, ..Default::default() };
            let messages = vec![
                pb::UploadFileRequest { data: Some(Data::Metadata(metadata)) },
                pb::UploadFileRequest { data: Some(Data::Chunk(b"B!!".to_vec())) },
            ];
            c.upload_file(auth(tokio_stream::iter(messages))).await.map(drop)
        });
    // B restores its own items to A's path: into B's storage, like anywhere.
    let b_trash = t.b_trash.clone();
    probe!(probes; files, "FileService/RestoreFile", "path", "private/old.txt", "private/fresh-restore.txt",
        ok, [b_trash] |c, path, auth| {
            let name = b_trash.lock().unwrap().pop().unwrap();
            let request = pb::RestoreFileRequest { name, path, conflict_policy: 0 };
            c.restore_file(auth(request)).await.map(drop)
        });
    // CreateOperation's paths resolve in B's storage too.
    let create_in = |operation: pb::Operation| pb::CreateOperationRequest {
        operation: Some(pb::Operation {
            dry_run: true,
            ..operation
        }),
        request_id: String::new(),
    };
    probe!(probes; ops, "OperationService/CreateOperation", "operation.source_path", "later", "never-there",
        Code::InvalidArgument, |c, source, auth| {
            c.create_operation(auth(create_in(organize(&source)))).await.map(drop)
        });
    probe!(probes; ops, "OperationService/CreateOperation", "operation.destination_path",
        "private/Documents", "elsewhere/new", ok, |c, destination_path, auth| {
            let operation = pb::Operation { destination_path, ..organize("mine") };
            c.create_operation(auth(create_in(operation))).await.map(drop)
        });
    probes.list
}

/// A's trash item, category and API key, by name.
/// An automation that only plans and fires once a year (never during a
/// test), organizing `source`.
fn yearly(source: &str) -> pb::Automation {
    pb::Automation {
        trigger: Some(Trigger::Schedule(pb::ScheduleTrigger {
            cron: "0 0 1 1 *".into(),
            time_zone: String::new(),
        })),
        operation: Some(pb::Operation {
            dry_run: true,
            ..organize(source)
        }),
        ..Default::default()
    }
}

/// The request updating a new automation of B's own (organizing its folder
/// `mine`) with `patch` under `mask`.
async fn update_own(
    c: &mut AutomationServiceClient<Channel>,
    token: &str,
    patch: pb::Automation,
    mask: &str,
) -> Result<pb::UpdateAutomationRequest, Status> {
    let own = c
        .create_automation(bearer(
            pb::CreateAutomationRequest {
                automation: Some(yearly("mine")),
            },
            token,
        ))
        .await?
        .into_inner();
    Ok(pb::UpdateAutomationRequest {
        automation: Some(pb::Automation {
            name: own.name,
            ..patch
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![mask.into()],
        }),
    })
}

fn arrival(folder_path: String) -> pb::Automation {
    pb::Automation {
        trigger: Some(Trigger::Arrival(pb::ArrivalTrigger {
            folder_path,
            quiet_period: None,
        })),
        ..yearly("")
    }
}

fn watched(folder_path: String) -> pb::Automation {
    let mut automation = pb::Automation {
        trigger: Some(Trigger::WatchedFolder(pb::WatchedFolderTrigger {
            folder_path,
            quiet_period: None,
        })),
        ..yearly("")
    };
    automation.operation.as_mut().unwrap().destination_path = "sorted-elsewhere".into();
    automation
}

/// A's automation by name; paths of automations resolve in B's storage.
#[rustfmt::skip::macros(probe)]
fn automation_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let b_token = t.b.token.clone();
    let (nf, ok, bad) = (Code::NotFound, Code::Ok, Code::InvalidArgument);
    let owner = &t.a_automation;
    let missing = &format!("automations/{}", uuid());
    probe!(probes; automations, "AutomationService/GetAutomation", "name", owner, missing, nf, |c, name, auth| {
        c.get_automation(auth(pb::GetAutomationRequest { name })).await.map(drop)
    });
    probe!(probes; automations, "AutomationService/DeleteAutomation", "name", owner, missing, nf, |c, name, auth| {
        c.delete_automation(auth(pb::DeleteAutomationRequest {
            name,
            ..Default::default()
        })).await.map(drop)
    });
    probe!(probes; automations, "AutomationService/PauseAutomation", "name", owner, missing, nf, |c, name, auth| {
        c.pause_automation(auth(pb::PauseAutomationRequest { name })).await.map(drop)
    });
    probe!(probes; automations, "AutomationService/ResumeAutomation", "name", owner, missing, nf, |c, name, auth| {
        c.resume_automation(auth(pb::ResumeAutomationRequest { name })).await.map(drop)
    });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.name", owner, missing, nf,
        |c, name, auth| {
            let request = pb::UpdateAutomationRequest {
                automation: Some(pb::Automation { name, display_name: "B's now".into(), ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            };
            c.update_automation(auth(request)).await.map(drop)
        });
    // An output-only name is ignored on create: B gets an automation of its own.
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.name", owner, missing, ok,
        |c, name, auth| {
            let automation = pb::Automation { name: name.clone(), ..yearly("mine") };
            let created = c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(automation) }))
                .await?.into_inner();
            assert_ne!(created.name, name, "the client chose the automation's name");
            Ok(())
        });
    let (op, missing_op) = (&t.done, &format!("operations/{}", uuid()));
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.operation.name", op, missing_op,
        ok, |c, name, auth| {
            let mut automation = yearly("mine");
            automation.operation.as_mut().unwrap().name = name;
            c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(automation) })).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.operation.name", op, missing_op,
        ok, [b_token] |c, name, auth| {
            let mut patch = yearly("mine");
            patch.operation.as_mut().unwrap().name = name;
            let request = update_own(&mut c, &b_token, patch, "operation").await?;
            c.update_automation(auth(request)).await.map(drop)
        });
    // Paths: A's folder is no folder of B's.
    let (folder, nothing) = ("private/Documents", "private/Nothing");
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.arrival.folder_path", folder,
        nothing, ok, |c, path, auth| {
            c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(arrival(path)) })).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.watched_folder.folder_path",
        folder, nothing, ok, |c, path, auth| {
            c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(watched(path)) })).await.map(drop)
        });
    // (The probes above created those folders in B's storage: the source
    // probes name another of A's folders.)
    let (source, no_source) = ("later", "not-later");
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.operation.source_path", source,
        no_source, bad, |c, path, auth| {
            c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(yearly(&path)) })).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/CreateAutomation", "automation.operation.destination_path",
        folder, nothing, ok, |c, path, auth| {
            let mut automation = yearly("mine");
            automation.operation.as_mut().unwrap().destination_path = path;
            c.create_automation(auth(pb::CreateAutomationRequest { automation: Some(automation) })).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.arrival.folder_path", folder,
        nothing, ok, [b_token] |c, path, auth| {
            let request = update_own(&mut c, &b_token, arrival(path), "arrival").await?;
            c.update_automation(auth(request)).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.watched_folder.folder_path",
        folder, nothing, ok, [b_token] |c, path, auth| {
            let request = update_own(&mut c, &b_token, watched(path), "watched_folder").await?;
            c.update_automation(auth(request)).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.operation.source_path", source,
        no_source, bad, [b_token] |c, path, auth| {
            let request = update_own(&mut c, &b_token, yearly(&path), "operation").await?;
            c.update_automation(auth(request)).await.map(drop)
        });
    probe!(probes; automations, "AutomationService/UpdateAutomation", "automation.operation.destination_path",
        folder, nothing, ok, [b_token] |c, path, auth| {
            let mut patch = yearly("mine");
            patch.operation.as_mut().unwrap().destination_path = path;
            let request = update_own(&mut c, &b_token, patch, "operation").await?;
            c.update_automation(auth(request)).await.map(drop)
        });
    probes.list
}

#[rustfmt::skip::macros(probe)]
fn trash_category_and_key_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let (nf, ok) = (Code::NotFound, Code::Ok);
    let missing_trash = &format!("trash/{}", uuid());
    probe!(probes; files, "FileService/RestoreFile", "name", &t.a_trash, missing_trash, nf, |c, name, auth| {
        let request = pb::RestoreFileRequest { name, path: "stolen.txt".into(), conflict_policy: 0 };
        c.restore_file(auth(request)).await.map(drop)
    });
    probe!(probes; files, "FileService/EmptyTrash", "names", &t.a_trash, missing_trash, nf, |c, name, auth| {
        c.empty_trash(auth(pb::EmptyTrashRequest { names: vec![name] })).await.map(drop)
    });
    let missing_category = &format!("categories/{}", uuid());
    probe!(probes; files, "FileService/UpdateCategory", "category.name", &t.a_category, missing_category, nf,
        |c, name, auth| {
            let category = pb::Category {
                name,
                display_name: "Taken over".into(),
                extensions: vec!["inv".into()],
                ..Default::default()
            };
            let request = pb::UpdateCategoryRequest { category: Some(category), update_mask: None };
            c.update_category(auth(request)).await.map(drop)
        });
    probe!(probes; files, "FileService/DeleteCategory", "name", &t.a_category, missing_category, nf,
        |c, name, auth| c.delete_category(auth(pb::DeleteCategoryRequest { name })).await.map(drop));
    let serial = Arc::new(AtomicUsize::new(0));
    let next = move || serial.fetch_add(1, Ordering::Relaxed);
    probe!(probes; files, "FileService/CreateCategory", "category.name", &t.a_category, missing_category, ok,
        [next] |c, name, auth| {
            let category = pb::Category {
                name: name.clone(),
                display_name: format!("Probe {}", next()),
                extensions: vec!["prb".into()],
                ..Default::default()
            };
            let request = pb::CreateCategoryRequest { category: Some(category) };
            let created = c.create_category(auth(request)).await?.into_inner();
            assert_ne!(created.name, name, "the client chose the category's name");
            Ok(())
        });
    let missing_key = &format!("api-keys/{}", uuid());
    probe!(probes; auth, "AuthService/RevokeApiKey", "name", &t.a_key, missing_key, nf, |c, name, auth| {
        c.revoke_api_key(auth(pb::RevokeApiKeyRequest { name })).await.map(drop)
    });
    probe!(probes; auth, "AuthService/CreateApiKey", "api_key.name", &t.a_key, missing_key, ok,
        [next] |c, name, auth| {
            let key = pb::ApiKey {
                name: name.clone(),
                display_name: format!("probe {}", next()),
                ..Default::default()
            };
            let created = c.create_api_key(auth(pb::CreateApiKeyRequest { api_key: Some(key) })).await?;
            assert_ne!(created.into_inner().api_key.unwrap().name, name);
            Ok(())
        });
    probes.list
}

/// A resumable upload session of A's: 3 of 6 bytes committed.
async fn a_upload_session(app: &TestApp, a: &User) -> String {
    let mut files = FileServiceClient::new(channel(app));
    let upload = files
        .create_upload(bearer(
            pb::CreateUploadRequest {
                upload: Some(pb::Upload {
                    path: "private/coming.bin".into(),
                    size_bytes: 6,
                    ..Default::default()
                }),
            },
            &a.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let append = pb::AppendUploadRequest {
        name: upload.name.clone(),
        offset: 0,
        content: Some(HttpBody {
            data: b"A's".to_vec(),
            ..Default::default()
        }),
    };
    files
        .append_upload(bearer(tokio_stream::iter(vec![append]), &a.token))
        .await
        .unwrap();
    upload.name
}

/// A's resumable upload session, and the uploads that take a path.
#[rustfmt::skip::macros(probe)]
fn upload_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let (nf, ok) = (Code::NotFound, Code::Ok);
    let missing = &format!("uploads/{}", uuid());
    probe!(probes; files, "FileService/GetUpload", "name", &t.a_upload, missing, nf, |c, name, auth| {
        c.get_upload(auth(pb::GetUploadRequest { name })).await.map(drop)
    });
    probe!(probes; files, "FileService/AppendUpload", "name", &t.a_upload, missing, nf, |c, name, auth| {
        let content = Some(HttpBody { data: b"B's".to_vec(), ..Default::default() });
        let append = pb::AppendUploadRequest { name, offset: 3, content };
        c.append_upload(auth(tokio_stream::iter(vec![append]))).await.map(drop)
    });
    probe!(probes; files, "FileService/FinishUpload", "name", &t.a_upload, missing, nf, |c, name, auth| {
        c.finish_upload(auth(pb::FinishUploadRequest { name })).await.map(drop)
    });
    probe!(probes; files, "FileService/CancelUpload", "name", &t.a_upload, missing, nf, |c, name, auth| {
        c.cancel_upload(auth(pb::CancelUploadRequest { name })).await.map(drop)
    });
    // B's own sessions and raw uploads at A's paths land in B's storage.
    probe!(probes; files, "FileService/CreateUpload", "upload.path", "private/coming.bin",
        "private/fresh-session.bin", ok, |c, path, auth| {
            let upload = pb::Upload { path, size_bytes: 1, ..Default::default() };
            c.create_upload(auth(pb::CreateUploadRequest { upload: Some(upload) })).await.map(drop)
        });
    let serial = Arc::new(AtomicUsize::new(0));
    let next = move || serial.fetch_add(1, Ordering::Relaxed);
    probe!(probes; files, "FileService/CreateUpload", "upload.name", &t.a_upload, missing, ok,
        [next] |c, name, auth| {
            let upload = pb::Upload {
                name: name.clone(),
                path: format!("probe/{}.bin", next()),
                size_bytes: 1,
                ..Default::default()
            };
            let created = c.create_upload(auth(pb::CreateUploadRequest { upload: Some(upload) })).await?;
            assert_ne!(created.into_inner().name, name, "the client chose the session's name");
            Ok(())
        });
    probe!(probes; files, "FileService/UploadRawFile", "path", "private/secret.txt",
        "private/fresh-raw.txt", ok, |c, path, auth| {
            let content = Some(HttpBody { data: b"B raw".to_vec(), ..Default::default() });
            let request = pb::UploadRawFileRequest { path, content, ..Default::default() };
            c.upload_raw_file(auth(tokio_stream::iter(vec![request]))).await.map(drop)
        });
    // An import at A's path lands in B's storage (an empty tar: 1024 zero bytes).
    probe!(probes; files, "FileService/ImportArchive", "path", "private",
        "fresh-import", ok, |c, path, auth| {
            let body = Some(HttpBody { data: vec![0; 1024], ..Default::default() });
            let format = pb::ArchiveFormat::Tar as i32;
            let request = pb::ImportArchiveRequest { path, format, body, ..Default::default() };
            c.import_archive(auth(tokio_stream::iter(vec![request]))).await.map(drop)
        });
    probes.list
}

/// A rule that decides nothing of A's tree (it names `.txt` files in a
/// folder A does not have), so A's organize is the same with it.
fn a_rule_message() -> pb::Rule {
    use pb::{rule_action::Action, rule_condition::Condition};
    pb::Rule {
        display_name: "A's rule".into(),
        conditions: vec![pb::RuleCondition {
            condition: Some(Condition::UnderFolder("nowhere".into())),
        }],
        action: Some(pb::RuleAction {
            action: Some(Action::Trash(pb::TrashAction {})),
        }),
        ..Default::default()
    }
}

/// A's organizing rule: read, changed, deleted, named in a new rule or a
/// draft by B.
#[rustfmt::skip::macros(probe)]
fn rule_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let (nf, ok) = (Code::NotFound, Code::Ok);
    let a_rule = &t.a_rule.name;
    let missing = &format!("rules/{}", uuid());
    probe!(probes; rules, "RuleService/GetRule", "name", a_rule, missing, nf, |c, name, auth| {
        c.get_rule(auth(pb::GetRuleRequest { name })).await.map(drop)
    });
    probe!(probes; rules, "RuleService/UpdateRule", "rule.name", a_rule, missing, nf, |c, name, auth| {
        let rule = pb::Rule { name, display_name: "Taken over".into(), ..a_rule_message() };
        c.update_rule(auth(pb::UpdateRuleRequest { rule: Some(rule), update_mask: None })).await.map(drop)
    });
    probe!(probes; rules, "RuleService/DeleteRule", "name", a_rule, missing, nf, |c, name, auth| {
        c.delete_rule(auth(pb::DeleteRuleRequest { name, etag: String::new() })).await.map(drop)
    });
    probe!(probes; rules, "RuleService/CreateRule", "rule.name", a_rule, missing, ok, |c, name, auth| {
        let rule = pb::Rule { name: name.clone(), ..a_rule_message() };
        let created = c.create_rule(auth(pb::CreateRuleRequest { rule: Some(rule) })).await?;
        assert_ne!(created.into_inner().name, name, "the client chose the rule's name");
        Ok(())
    });
    // A draft's name is ignored: B previews B's own files with B's draft.
    probe!(probes; rules, "RuleService/PreviewRules", "rules.name", a_rule, missing, ok, |c, name, auth| {
        let rule = pb::Rule { name, ..a_rule_message() };
        let request = pb::PreviewRulesRequest { folder: "mine".into(), rules: vec![rule], ..Default::default() };
        let answer = c.preview_rules(auth(request)).await?.into_inner();
        assert!(answer.entries.iter().all(|e| e.rule.is_empty() || e.rule == "rules/-0"));
        Ok(())
    });
    probes.list
}

/// A's profile and session, and the admin RPCs that name a user.
#[rustfmt::skip::macros(probe)]
fn account_and_admin_probes(t: &Tenants) -> Vec<Probe> {
    let mut probes = Probes::new(t);
    let (nf, ok) = (Code::NotFound, Code::Ok);
    // UpdateCurrentUser changes the caller, whatever user it names.
    let missing_id = &uuid();
    let update_me = |user: pb::User| pb::UpdateCurrentUserRequest {
        user: Some(pb::User {
            display_name: "Renamed by B".into(),
            ..user
        }),
        ..Default::default()
    };
    let a_name = format!("users/{}", t.a_user.id);
    let missing_name = &format!("users/{missing_id}");
    probe!(probes; auth, "AuthService/UpdateCurrentUser", "user.name", &a_name.clone(), missing_name, ok,
        [a_name] |c, name, auth| {
            let me = c.update_current_user(auth(update_me(pb::User { name, ..Default::default() }))).await?;
            assert!(!a_name.ends_with(&me.into_inner().id), "B's update reached A");
            Ok(())
        });
    probe!(probes; auth, "AuthService/UpdateCurrentUser", "user.id", &t.a_user.id, missing_id, ok,
        [a_name] |c, id, auth| {
            let me = c.update_current_user(auth(update_me(pb::User { id, ..Default::default() }))).await?;
            assert!(!a_name.ends_with(&me.into_inner().id), "B's update reached A");
            Ok(())
        });
    // A's refresh token is A's session: B cannot end it.
    let a_refresh = &t.a_session.refresh_token;
    let wrong_refresh = &format!("{}x", &a_refresh[..a_refresh.len() - 1]);
    probe!(probes; auth, "AuthService/Logout", "refresh_token", a_refresh, wrong_refresh, nf,
        |c, refresh_token, auth| {
            let request = pb::LogoutRequest { refresh_token, all_sessions: false };
            c.logout(auth(request)).await.map(drop)
        });
    // Admin routes: a non-admin is refused alike, whoever is named.
    let denied = Code::PermissionDenied;
    probe!(probes; system, "SystemService/GetRateLimitStatus", "user_id", &t.a_user.id, missing_id, denied,
        |c, user_id, auth| {
            c.get_rate_limit_status(auth(pb::GetRateLimitStatusRequest { user_id })).await.map(drop)
        });
    probe!(probes; system, "SystemService/ResetRateLimit", "user_id", &t.a_user.id, missing_id, denied,
        |c, user_id, auth| {
            let request = pb::ResetRateLimitRequest { user_id, buckets: vec![] };
            c.reset_rate_limit(auth(request)).await.map(drop)
        });
    probe!(probes; system, "SystemService/ListAuditEvents", "user_id", &t.a_user.id, missing_id, denied,
        |c, user_id, auth| {
            let request = pb::ListAuditEventsRequest { user_id, ..Default::default() };
            c.list_audit_events(auth(request)).await.map(drop)
        });
    probes.list
}

/// Calls each probe with A's identifier and with the missing one: the
/// expected code, and the same answer both times.
async fn assert_answered_alike(probes: &[Probe]) {
    for p in probes {
        let owner = (p.call)(p.owner.clone()).await;
        let missing = (p.call)(p.missing.clone()).await;
        let what = format!("{} {} (B with A's {:?})", p.rpc, p.field, p.owner);
        match &owner {
            Ok(()) => assert_eq!(p.expect, Code::Ok, "{what}: answered OK"),
            Err(status) => assert_eq!(status.code(), p.expect, "{what}: {status:?}"),
        }
        assert_eq!(
            observed(&owner, &p.owner),
            observed(&missing, &p.missing),
            "{what}: the answer differs from the one for a missing identifier"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_identifier_field_of_the_contract_has_an_isolation_probe() {
    let t = tenants().await;
    let probes: Vec<Probe> = [
        operation_probes(&t),
        path_probes(&t),
        trash_category_and_key_probes(&t),
        account_and_admin_probes(&t),
        upload_probes(&t),
        rule_probes(&t),
        automation_probes(&t),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Every identifier field of the contract is probed, and every probe
    // names a real field (so a new RPC cannot slip by untested).
    let contract = identifier_fields();
    let probed: BTreeSet<(String, String)> = probes
        .iter()
        .map(|p| (p.rpc.to_string(), p.field.to_string()))
        .collect();
    let unprobed: Vec<_> = contract.difference(&probed).collect();
    assert!(
        unprobed.is_empty(),
        "RPC fields naming a resource or path without an isolation probe: {unprobed:?}"
    );
    for (rpc, field) in &probed {
        let real = contract.contains(&(rpc.clone(), field.clone()))
            || (rpc == "AuthService/Logout" && field == "refresh_token");
        assert!(
            real,
            "probe of a field the contract does not have: {rpc} {field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_operations_and_reports_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&operation_probes(&t)).await;
    t.assert_a_unchanged().await;
    // B's list shows nothing of A's.
    let b_ops = OperationServiceClient::new(channel(&t.app))
        .list_operations(bearer(pb::ListOperationsRequest::default(), &t.b.token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        b_ops
            .operations
            .iter()
            .all(|o| o.name != t.done && o.name != t.planned),
        "B lists A's operations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_paths_resolve_in_the_callers_own_storage() {
    let t = tenants().await;
    assert_answered_alike(&path_probes(&t)).await;
    t.assert_a_unchanged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_automations_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&automation_probes(&t)).await;
    t.assert_a_unchanged().await;
    // B's list shows nothing of A's, and B's automations are B's.
    let b_list = AutomationServiceClient::new(channel(&t.app))
        .list_automations(bearer(
            pb::ListAutomationsRequest {
                page_size: 1000,
                ..Default::default()
            },
            &t.b.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!b_list.automations.is_empty());
    assert!(b_list.automations.iter().all(|a| a.name != t.a_automation));
    // Nothing B created put a folder in A's storage.
    assert!(!t.a.root.join("private/Nothing").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_trash_categories_and_keys_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&trash_category_and_key_probes(&t)).await;
    t.assert_a_unchanged().await;
    // B's list shows nothing of A's.
    let b_keys = AuthServiceClient::new(channel(&t.app))
        .list_api_keys(bearer(pb::ListApiKeysRequest::default(), &t.b.token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        b_keys.api_keys.iter().all(|k| k.name != t.a_key),
        "B lists A's key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_upload_sessions_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&upload_probes(&t)).await;
    t.assert_a_unchanged().await;
    // A's session is as A left it, and still A's to finish.
    let mut files = FileServiceClient::new(channel(&t.app));
    let got = files
        .get_upload(bearer(
            pb::GetUploadRequest {
                name: t.a_upload.clone(),
            },
            &t.a.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.committed_offset, 3);
    assert!(!t.b.root.join("private/coming.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_account_and_session_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&account_and_admin_probes(&t)).await;
    t.assert_a_unchanged().await;
    AuthServiceClient::new(channel(&t.app))
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: t.a_session.refresh_token.clone(),
        })
        .await
        .expect("A's session survives B's logout attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_routes_answer_another_tenants_ids_like_missing_ones() {
    use reqwest::StatusCode;

    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let a = user(&app, "rest-a").await;
    let b = user(&app, "rest-b").await;
    upload(&app, &a, "docs/report.pdf", b"A's pdf").await;
    upload(&app, &a, "docs/old.txt", b"old").await;
    let a_trash = trash(&app, &a, "docs/old.txt").await;
    let op = create(&app, &a, organize("docs")).await.name;
    wait_for(&app, &a, &op, &[OperationState::Succeeded]).await;
    let a_category = create_category(&app, &a, category("Receipts", &["rcp"], &[]))
        .await
        .unwrap()
        .name;
    let before = snapshot(&app, &a, &[&op]).await;
    let id = |name: &str| name.rsplit_once('/').unwrap().1.to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    let http = reqwest::Client::new();
    let routes: Vec<(reqwest::Method, String, String)> = vec![
        (
            reqwest::Method::GET,
            "/api/v1/operations/{}".into(),
            id(&op),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/operations/{}:undo".into(),
            id(&op),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/operations/{}/files".into(),
            id(&op),
        ),
        (reqwest::Method::GET, "/api/v1/reports/{}".into(), id(&op)),
        (
            reqwest::Method::GET,
            "/api/v1/reports/{}/duplicate-groups".into(),
            id(&op),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/trash/{}:restore".into(),
            id(&a_trash),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/categories/{}".into(),
            id(&a_category),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/files:download?path={}".into(),
            "docs%2FDocuments%2Freport.pdf".into(),
        ),
    ];
    for (method, template, owner) in routes {
        let mut bodies = Vec::new();
        for ident in [owner.as_str(), missing.as_str()] {
            let url = envoy.url(&template.replace("{}", ident));
            let mut request = http.request(method.clone(), url).bearer_auth(&b.token);
            if method == reqwest::Method::POST {
                request = request.json(&serde_json::json!({}));
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::NOT_FOUND,
                "{method} {template}"
            );
            let body = response.text().await.unwrap();
            let unescaped = ident.replace("%2F", "/");
            bodies.push(body.replace(&unescaped, "<id>").replace(ident, "<id>"));
        }
        assert_eq!(bodies[0], bodies[1], "{method} {template}: bodies differ");
        let json: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(json["code"], 5, "{method} {template}: {json}");
    }
    assert_eq!(snapshot(&app, &a, &[&op]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_rules_answer_like_missing_ones() {
    let t = tenants().await;
    assert_answered_alike(&rule_probes(&t)).await;
    t.assert_a_unchanged().await;
    let rules = RuleServiceClient::new(channel(&t.app));
    let mine = rules
        .clone()
        .get_rule(bearer(
            pb::GetRuleRequest {
                name: t.a_rule.name.clone(),
            },
            &t.a.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine, t.a_rule, "A's rule changed");
    // B's list shows nothing of A's, and A's shows nothing of B's.
    for (token, other) in [(&t.b.token, Some(&t.a_rule.name)), (&t.a.token, None)] {
        let listed = rules
            .clone()
            .list_rules(bearer(pb::ListRulesRequest::default(), token))
            .await
            .unwrap()
            .into_inner();
        match other {
            Some(a_rule) => assert!(listed.rules.iter().all(|r| &r.name != a_rule)),
            None => assert_eq!(listed.rules, std::slice::from_ref(&t.a_rule)),
        }
    }
}
