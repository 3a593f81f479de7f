//! The TypeScript SDK (`sdk/typescript`) against a live server over native gRPC
//! (connect-node): runs its node:test suite (`sdk/typescript/test/sdk.test.ts`, through tsx)
//! with FILEORG_URL pointing at a fresh `TestApp`. Access tokens live 10 s (the minimum) so
//! the suite can watch the SDK refresh one before it expires.

use crate::common::{
    Options, TestApp,
    node::{build_workspaces, node},
};

/// Tests in sdk/typescript/test/sdk.test.ts; the count guards against a suite that silently
/// ran fewer.
const SUITE_TESTS: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_test_suite_passes_against_a_live_server() {
    let app = TestApp::spawn_with(Options {
        env: vec![("ACCESS_TOKEN_TTL_SECS", "10".into())],
        ..Options::default()
    })
    .await;
    let url = format!("http://127.0.0.1:{}", app.addr.port());
    let output = tokio::task::spawn_blocking(move || {
        build_workspaces();
        node()
            .args([
                "--import",
                "tsx",
                "--test",
                "--test-reporter=tap",
                "sdk/typescript/test/sdk.test.ts",
            ])
            .env("FILEORG_URL", url)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "node --test sdk/typescript/test/sdk.test.ts failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("# pass {SUITE_TESTS}\n")) && stdout.contains("# fail 0\n"),
        "expected {SUITE_TESTS} passing tests:\n{stdout}"
    );
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
    let url = format!("http://127.0.0.1:{}", app.addr.port());
    let output = tokio::task::spawn_blocking(move || {
        build_workspaces();
        node()
            .args([
                "--import",
                "tsx",
                "--test",
                "--test-reporter=tap",
                "sdk/typescript/test/transfers.test.ts",
            ])
            .env("FILEORG_URL", url)
            .env("FILEORG_UPLOAD_LIMIT", LOW_UPLOAD_LIMIT.to_string())
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "node --test sdk/typescript/test/transfers.test.ts failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("# pass 5\n") && stdout.contains("# fail 0\n"),
        "expected 5 passing tests:\n{stdout}"
    );
}
