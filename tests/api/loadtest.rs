//! CI smoke run of `fileorg loadtest` at small scale: the JSON report is
//! complete and error-free. No timing assertions.

use std::process::Stdio;

use crate::common::TestApp;

async fn loadtest(app: &TestApp, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .arg("loadtest")
        .arg("--addr")
        .arg(app.addr.to_string())
        .args(args)
        .current_dir(cwd)
        .env("DATABASE_URL", &app.database_url)
        .env("STORAGE_ROOT", &app.state.config.storage_root)
        .env_remove("GRPC_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run fileorg loadtest");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_smoke_writes_a_complete_error_free_report() {
    let app = TestApp::spawn().await;
    let cwd = tempfile::tempdir().unwrap();
    let pid = std::process::id().to_string();
    let output = loadtest(
        &app,
        cwd.path(),
        &[
            "--files",
            "2000",
            "--seed",
            "7",
            "--concurrent",
            "8",
            "--duration",
            "3",
            "--server-pid",
            &pid,
            "--report",
        ],
    )
    .await;
    assert!(output.status.success(), "loadtest failed: {output:?}");

    let path = cwd.path().join("data/reports/load_test_results.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report written")).unwrap();
    for key in [
        "tool",
        "timestamp",
        "target",
        "machine",
        "options",
        "organize",
        "load",
    ] {
        assert!(!report[key].is_null(), "missing {key}: {report:#}");
    }

    let organize = &report["organize"];
    assert_eq!(organize["succeeded"], true, "{organize:#}");
    assert_eq!(organize["files"], 2000);
    assert_eq!(organize["tree"]["files"], 2000);
    // Hard links of an already scanned inode are skipped, not scanned.
    let counters = &organize["counters"];
    let (scanned, skipped) = (
        counters["files_scanned"].as_u64().unwrap(),
        counters["files_skipped"].as_u64().unwrap(),
    );
    assert_eq!(scanned + skipped, 2000, "{organize:#}");
    assert_eq!(skipped, organize["tree"]["hard_links"].as_u64().unwrap());
    assert_eq!(counters["files_moved"].as_u64().unwrap(), scanned);
    assert_eq!(counters["files_failed"], 0);
    assert_eq!(
        counters["duplicates_found"], organize["tree"]["duplicate_copies"],
        "{organize:#}"
    );
    for key in ["end_to_end_seconds", "files_per_second", "phase_seconds"] {
        assert!(!organize[key].is_null(), "missing organize.{key}");
    }
    for phase in ["scan", "hash", "plan", "journal", "apply", "report"] {
        assert!(
            organize["phase_seconds"].get(phase).is_some(),
            "missing phase {phase}"
        );
    }

    let load = &report["load"];
    for key in [
        "total_requests",
        "success_rate",
        "failures_by_code",
        "throughput_rps",
        "latency_ms",
        "by_method",
    ] {
        assert!(!load[key].is_null(), "missing load.{key}: {load:#}");
    }
    for key in ["min_ms", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"] {
        assert!(load["latency_ms"][key].is_number(), "missing latency {key}");
    }
    assert!(load["total_requests"].as_u64().unwrap() > 0);
    assert_eq!(load["non_rate_limit_failures"], 0, "{load:#}");
    for server in [&organize["server"], &load["server"]] {
        assert!(server["peak_rss_mb"].as_f64().unwrap() > 0.0, "{server:#}");
        assert!(server["avg_cpu_percent"].is_number(), "{server:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_refuses_non_loopback_targets() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(["loadtest", "--addr", "192.0.2.1:50051", "--concurrent", "1"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("loopback"),
        "{output:?}"
    );
}
