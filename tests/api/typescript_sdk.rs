//! The TypeScript SDK (`sdk/typescript`): runs its node:test suites (through tsx) with
//! FILEORG_URL pointing at a fresh `TestApp` over native gRPC (connect-node):
//! `test/sdk.test.ts` (access tokens live 10 s, the minimum, so the suite can watch the SDK
//! refresh one before it expires), `test/readme.test.ts` (every README example, and every
//! wrapper shown in one), `test/transfers.test.ts` (a low upload limit), and
//! `test/offline.test.ts`, which needs no server (every RPC of the descriptors reachable and
//! authenticated, UNREACHABLE errors against closed local ports, JSON of every message).

use crate::common::{
    Options, TestApp,
    node::{build_workspaces, node},
};

/// Runs `node --test sdk/typescript/test/<suite>` with `env` and asserts that exactly
/// `passing` tests passed (the count guards against a suite that silently ran fewer).
async fn run_suite(suite: &'static str, env: Vec<(&'static str, String)>, passing: usize) {
    let output = tokio::task::spawn_blocking(move || {
        build_workspaces();
        node()
            .args(["--import", "tsx", "--test", "--test-reporter=tap"])
            .arg(format!("sdk/typescript/test/{suite}"))
            .envs(env)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "node --test sdk/typescript/test/{suite} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("# pass {passing}\n")) && stdout.contains("# fail 0\n"),
        "expected {passing} passing tests in {suite}:\n{stdout}"
    );
}

fn url_of(app: &TestApp) -> String {
    format!("http://127.0.0.1:{}", app.addr.port())
}

/// Tests in sdk/typescript/test/sdk.test.ts.
const SUITE_TESTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_test_suite_passes_against_a_live_server() {
    let app = TestApp::spawn_with(Options {
        env: vec![("ACCESS_TOKEN_TTL_SECS", "10".into())],
        ..Options::default()
    })
    .await;
    run_suite(
        "sdk.test.ts",
        vec![("FILEORG_URL", url_of(&app))],
        SUITE_TESTS,
    )
    .await;
}

/// Every ```ts block of sdk/typescript/README.md, run in order as one program against a
/// fresh server, each `// →` line printing what it says; every wrapper shown in one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_readme_examples_run_against_a_live_server() {
    let app = TestApp::spawn().await;
    run_suite("readme.test.ts", vec![("FILEORG_URL", url_of(&app))], 2).await;
}

/// The checks that need no server: RPC coverage of the descriptors, UNREACHABLE errors
/// (closed port, TLS against plain TCP, unknown host), a server that was reached never
/// called unreachable, the page-token loop guard, JSON of every message, npm script paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_offline_checks() {
    run_suite("offline.test.ts", vec![], 7).await;
}

/// Uploads allowed per window in `typescript_sdk_transfers_against_a_low_upload_limit`.
const LOW_UPLOAD_LIMIT: u32 = 3;

/// The SDK's Node transfers (`sdk/typescript/test/transfers.test.ts`: uploadFolder paced by
/// RetryInfo and idempotent, importArchive and importArchiveBytes over grpc-web, uploadLarge
/// resumed after a cut connection) against a server that allows only a few uploads per short
/// window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_transfers_against_a_low_upload_limit() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("RATE_LIMIT_UPLOAD", LOW_UPLOAD_LIMIT.to_string()),
            ("RATE_LIMIT_WINDOW_SECS", "3".into()),
        ],
        ..Options::default()
    })
    .await;
    run_suite(
        "transfers.test.ts",
        vec![
            ("FILEORG_URL", url_of(&app)),
            ("FILEORG_UPLOAD_LIMIT", LOW_UPLOAD_LIMIT.to_string()),
        ],
        5,
    )
    .await;
}
