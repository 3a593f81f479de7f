//! Copies of one request: a client that timed out retries, two tabs press
//! the same button, a proxy replays. An idempotency key (`request_id`) makes
//! every copy answer with the one operation the first copy created, even
//! when the copies arrive at the same moment; without a key, UndoOperation
//! still creates at most one undo of an operation.

use std::collections::BTreeSet;

use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use tonic::Code;

use crate::{
    common::{TestApp, assert_code, bad_field, bearer, tree},
    operations::{User, create, organize, user, wait_for},
};

const COPIES: usize = 8;

async fn create_with_key(
    app: &TestApp,
    user: &User,
    source: &str,
    key: &str,
) -> Result<pb::Operation, tonic::Status> {
    app.operations()
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(pb::Operation {
                    dry_run: true,
                    ..organize(source)
                }),
                request_id: key.into(),
            },
            &user.token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn undo_with_key(
    app: &TestApp,
    user: &User,
    name: &str,
    key: &str,
) -> Result<pb::Operation, tonic::Status> {
    app.operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: name.into(),
                request_id: key.into(),
            },
            &user.token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Every operation of `kind` the user has.
async fn operations_of_kind(app: &TestApp, user: &User, kind: pb::OperationKind) -> Vec<String> {
    let request = pb::ListOperationsRequest {
        kind: kind.into(),
        page_size: 100,
        ..Default::default()
    };
    let operations = crate::operations::list(app, user, request).await;
    operations.into_iter().map(|op| op.name).collect()
}

/// A finished organize of a one-file tree.
async fn finished_organize(app: &TestApp, user: &User, folder: &str) -> pb::Operation {
    tree::write(&user.root, &format!("{folder}/a.txt"), folder.as_bytes());
    let op = create(app, user, organize(folder)).await;
    wait_for(app, user, &op.name, &[OperationState::Succeeded]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_create_sent_at_once_create_one_operation() {
    let app = TestApp::spawn().await;
    let erin = user(&app, "retry-create").await;
    tree::write(&erin.root, "in/a.txt", b"a");
    let key = uuid::Uuid::new_v4().to_string();
    let copies = (0..COPIES).map(|_| create_with_key(&app, &erin, "in", &key));
    let names: BTreeSet<String> = futures::future::join_all(copies)
        .await
        .into_iter()
        .map(|answer| {
            answer
                .expect("every copy is answered with the operation")
                .name
        })
        .collect();
    assert_eq!(
        names.len(),
        1,
        "the copies got different operations: {names:?}"
    );
    assert_eq!(
        operations_of_kind(&app, &erin, pb::OperationKind::Organize).await,
        names.into_iter().collect::<Vec<_>>(),
        "exactly one operation exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_undo_returns_the_first_undo_at_once_and_after_it_finished() {
    let app = TestApp::spawn().await;
    let fay = user(&app, "retry-undo").await;
    let op = finished_organize(&app, &fay, "in").await;
    let key = uuid::Uuid::new_v4().to_string();
    let copies = (0..COPIES).map(|_| undo_with_key(&app, &fay, &op.name, &key));
    let names: BTreeSet<String> = futures::future::join_all(copies)
        .await
        .into_iter()
        .map(|answer| answer.expect("every copy is answered with the undo").name)
        .collect();
    assert_eq!(names.len(), 1, "the copies got different undos: {names:?}");
    let undo = names.into_iter().next().unwrap();
    wait_for(&app, &fay, &undo, &[OperationState::Succeeded]).await;
    // The retry of a request whose answer was lost, after the undo finished:
    // the same undo, not ALREADY_EXISTS.
    let again = undo_with_key(&app, &fay, &op.name, &key)
        .await
        .expect("a retry after the undo finished is answered");
    assert_eq!(again.name, undo);
    assert_eq!(again.state(), OperationState::Succeeded);
    assert_eq!(
        operations_of_kind(&app, &fay, pb::OperationKind::Undo).await,
        vec![undo]
    );
    // Without the key it is a new request for an undone operation.
    assert_code(
        undo_with_key(&app, &fay, &op.name, "").await,
        Code::AlreadyExists,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undos_with_different_keys_sent_at_once_create_one_undo() {
    let app = TestApp::spawn().await;
    let gus = user(&app, "race-undo").await;
    let op = finished_organize(&app, &gus, "in").await;
    let keys: Vec<String> = (0..COPIES)
        .map(|n| {
            if n == 0 {
                String::new()
            } else {
                uuid::Uuid::new_v4().to_string()
            }
        })
        .collect();
    let answers = futures::future::join_all(
        keys.iter()
            .map(|key| undo_with_key(&app, &gus, &op.name, key)),
    )
    .await;
    let created: Vec<&pb::Operation> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one copy creates the undo: {answers:?}"
    );
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
        assert!(
            refused.message().contains(&created[0].name[..]),
            "the refusal names the undo: {refused:?}"
        );
    }
    assert_eq!(
        operations_of_kind(&app, &gus, pb::OperationKind::Undo).await,
        vec![created[0].name.clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_spent_on_another_request_is_refused_naming_request_id() {
    let app = TestApp::spawn().await;
    let hal = user(&app, "reused-key").await;
    let first = finished_organize(&app, &hal, "one").await;
    let second = finished_organize(&app, &hal, "two").await;
    let key = uuid::Uuid::new_v4().to_string();
    undo_with_key(&app, &hal, &first.name, &key).await.unwrap();
    // The same key for the undo of another operation is not that undo.
    let refused = assert_code(
        undo_with_key(&app, &hal, &second.name, &key).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&refused), "request_id");
    // Nor is a key spent on a CreateOperation.
    let created = create_with_key(&app, &hal, "two", &format!("{key}-c"))
        .await
        .unwrap();
    let refused = assert_code(
        undo_with_key(&app, &hal, &second.name, &format!("{key}-c")).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&refused), "request_id");
    assert!(refused.message().contains(&created.name[..]), "{refused:?}");
    assert_eq!(
        operations_of_kind(&app, &hal, pb::OperationKind::Undo)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_apply_sent_at_once_apply_once_and_all_are_answered() {
    let app = TestApp::spawn().await;
    let ida = user(&app, "retry-apply").await;
    tree::write(&ida.root, "in/a.txt", b"a");
    let planned = crate::operations::plan(&app, &ida, organize("in")).await;
    // More copies than the test server's pool has connections: a handler
    // that held one connection while taking another would wait for itself.
    let copies = (0..COPIES).map(|_| {
        let mut client = app.operations();
        let request = bearer(
            pb::ApplyOperationRequest {
                name: planned.name.clone(),
            },
            &ida.token,
        );
        async move { client.apply_operation(request).await }
    });
    let answers = futures::future::join_all(copies).await;
    let applied = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(applied, 1, "exactly one copy applies: {answers:?}");
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    wait_for(&app, &ida, &planned.name, &[OperationState::Succeeded]).await;
}

/// A handler that holds one pooled connection while it asks for another
/// waits for itself once the pool is busy: with a pool of one it always
/// does, so each path that did (undo and its retry, create's retry, apply,
/// restore with its categories) answers here, one call after another; and
/// those that held theirs while the disk worked (delete, empty the trash,
/// open an upload) answer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_comes_with_a_pool_of_one_connection() {
    let app = TestApp::spawn_with(crate::common::Options {
        env: vec![("DATABASE_POOL_SIZE", "1".into())],
        ..Default::default()
    })
    .await;
    let kim = user(&app, "pool-of-one").await;
    tree::write(&kim.root, "in/a.txt", b"a");
    tree::write(&kim.root, "keep/b.txt", b"b");
    let key = uuid::Uuid::new_v4().to_string();
    let first = create_with_key(&app, &kim, "in", &key).await.unwrap();
    let again = create_with_key(&app, &kim, "in", &key).await.unwrap();
    assert_eq!(again.name, first.name);
    wait_for(&app, &kim, &first.name, &[OperationState::Planned]).await;
    crate::operations::apply(&app, &kim, &first.name).await;
    wait_for(&app, &kim, &first.name, &[OperationState::Succeeded]).await;
    let undo = undo_with_key(&app, &kim, &first.name, &key).await;
    // The key was spent on the create: refused, and the refusal answers.
    assert_eq!(
        bad_field(&assert_code(undo, Code::InvalidArgument)),
        "request_id"
    );
    let undo = undo_with_key(&app, &kim, &first.name, &format!("{key}-u"))
        .await
        .unwrap();
    let again = undo_with_key(&app, &kim, &first.name, &format!("{key}-u"))
        .await
        .unwrap();
    assert_eq!(again.name, undo.name);
    wait_for(&app, &kim, &undo.name, &[OperationState::Succeeded]).await;
    let item = crate::files::delete(&app, &kim, "keep/b.txt")
        .await
        .unwrap();
    let back = crate::files::restore(
        &app,
        &kim,
        &item.name,
        "",
        pb::FileConflictPolicy::Unspecified,
    )
    .await
    .expect("the restore answers");
    assert_eq!(back.path, "keep/b.txt");
    assert_eq!(
        tree::snapshot(&kim.root).len(),
        2,
        "both files are where they began"
    );
    // Emptying the trash and opening a resumable upload answer too (each
    // held its connection while the disk worked).
    let item = crate::files::delete(&app, &kim, "keep/b.txt")
        .await
        .unwrap();
    let emptied = crate::files::empty_trash(&app, &kim, &[&item.name])
        .await
        .expect("EmptyTrash answers");
    assert_eq!((emptied.deleted_count, emptied.freed_bytes), (1, 1));
    let session =
        crate::uploads::create_session(&app, &kim, crate::uploads::session("later/big.bin", 10))
            .await
            .expect("CreateUpload answers");
    assert!(session.name.starts_with("uploads/"), "{session:?}");
}
