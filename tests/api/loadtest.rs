//! CI smoke run of `fileorg loadtest` at small scale: the JSON report is
//! complete and error-free. No timing assertions.
//!
//! The slow-query section needs a PostgreSQL started with
//! `shared_preload_libraries = pg_stat_statements`; the shared server is not
//! (and must not be restarted), so one test runs a private, throwaway cluster
//! that is (see [`PrivatePostgres`]).

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
    // Measured after the organize, from the server's database.
    assert!(
        organize["search_names_indexed"]["seconds_after_organize"].is_f64(),
        "{organize:#}"
    );

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

    // Collected, or a reason naming what is missing.
    let slow = &report["slow_queries"];
    match slow["collected"].as_bool() {
        Some(true) => assert!(slow["by_mean_time"].is_array(), "{slow:#}"),
        Some(false) => {
            let reason = slow["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("pg_stat_statements"), "{slow:#}");
        }
        None => panic!("slow_queries without `collected`: {slow:#}"),
    }
}

/// A PostgreSQL cluster of our own on a free loopback port, with
/// pg_stat_statements preloaded; stopped (immediate mode) and deleted on drop.
/// PostgreSQL refuses to run as root, so as root it runs as `postgres`.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bindir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn as_postgres(program: &std::path::Path) -> std::process::Command {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    fn run(mut command: std::process::Command) {
        let output = command.output().expect("run a PostgreSQL tool");
        assert!(output.status.success(), "{command:?}: {output:?}");
    }

    fn start() -> PrivatePostgres {
        let bindir = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .expect("pg_config (PostgreSQL server packages)");
        let bindir = std::path::PathBuf::from(String::from_utf8(bindir.stdout).unwrap().trim());
        let dir = tempfile::tempdir().unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let mut chown = std::process::Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(dir.path());
            Self::run(chown);
        }
        let data = dir.path().join("data");
        let mut initdb = Self::as_postgres(&bindir.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        Self::run(initdb);
        let port = crate::common::free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
             -c shared_preload_libraries=pg_stat_statements",
            dir.path().display()
        );
        let mut pg_ctl = Self::as_postgres(&bindir.join("pg_ctl"));
        pg_ctl
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.path().join("log"))
            .args(["-o", &options, "start"]);
        Self::run(pg_ctl);
        PrivatePostgres { dir, bindir, port }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut pg_ctl = Self::as_postgres(&self.bindir.join("pg_ctl"));
        pg_ctl
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = pg_ctl.output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_reports_the_slowest_statements_from_pg_stat_statements() {
    let app = TestApp::spawn().await;
    let postgres = PrivatePostgres::start();
    let url = postgres.url("fo_slow_queries");
    fileorganizer::db::ensure_database(&url).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();

    // A server of its own on the private database.
    let port = crate::common::free_port();
    let mut server = app
        .fileorg_command(&["serve"])
        .env("DATABASE_URL", &url)
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        // Every GetOperation reaches Postgres (no in-process cache), so the
        // run's own statements rank among the migrations' DDL.
        .env("CACHE_LOCAL_TTL_MS", "0")
        .envs(
            [
                "RATE_LIMIT_API",
                "RATE_LIMIT_GLOBAL_API",
                "RATE_LIMIT_LOGIN_PER_IP",
                "RATE_LIMIT_LOGIN_PER_EMAIL",
                "RATE_LIMIT_BURST",
            ]
            .map(|k| (k, "1000000")),
        )
        .spawn()
        .unwrap();
    crate::common::connect_when_up(port).await;

    let cwd = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(["loadtest", "--addr", &format!("127.0.0.1:{port}")])
        .args([
            "--concurrent",
            "2",
            "--requests",
            "40",
            "--mix",
            "get-operation",
        ])
        .arg("--report")
        .current_dir(cwd.path())
        .env("DATABASE_URL", &url)
        .env("STORAGE_ROOT", &app.state.config.storage_root)
        .env_remove("GRPC_ADDR")
        .output()
        .await
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(output.status.success(), "loadtest failed: {output:?}");
    let path = cwd.path().join("data/reports/load_test_results.json");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();

    let slow = &report["slow_queries"];
    assert_eq!(slow["collected"], true, "{slow:#}");
    assert!(
        slow["scope"].as_str().unwrap().contains("reset"),
        "{slow:#}"
    );
    for ranking in ["by_mean_time", "by_total_time"] {
        let top = slow[ranking].as_array().unwrap();
        assert!(!top.is_empty() && top.len() <= 10, "{slow:#}");
        for statement in top {
            assert!(statement["calls"].as_i64().unwrap() >= 1, "{statement:#}");
            assert!(statement["mean_ms"].is_number(), "{statement:#}");
        }
    }
    // The server's GetOperation lookups are among the run's statements.
    let queries: Vec<&str> = slow["by_total_time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["query"].as_str().unwrap())
        .collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("\"operations\"") || q.contains("operations")),
        "{queries:#?}"
    );
    drop(client);
    driver.abort();
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

/// `fileorg <args>` (no server involved), its stdout parsed as JSON.
fn fileorg_json(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(args)
        .output()
        .expect("run fileorg");
    assert!(
        output.status.success(),
        "fileorg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn find_duplicates_finds_exactly_the_copies_of_a_generated_tree() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let tree_arg = tree.to_str().unwrap();
    let summary = fileorg_json(&[
        "loadtest",
        "--generate-only",
        tree_arg,
        "--files",
        "600",
        "--seed",
        "3",
        "--duplicate-fraction",
        "0.3",
    ]);
    let count =
        |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key}: {v}"));
    assert_eq!(count(&summary, "files"), 600);
    assert!(count(&summary, "duplicate_copies") > 0, "{summary}");

    let found = fileorg_json(&["find-duplicates", tree_arg, "--threads", "2", "--json"]);
    // Hard links are one file (the extra names are skipped, as in an organize).
    assert_eq!(
        count(&found, "files"),
        count(&summary, "files") - count(&summary, "hard_links")
    );
    assert_eq!(count(&found, "skipped"), count(&summary, "hard_links"));
    assert_eq!(
        count(&found, "duplicate_copies"),
        count(&summary, "duplicate_copies"),
        "{found}"
    );
    assert_eq!(count(&found, "unreadable"), 0);
    // Nothing moved: the tree is as generated.
    assert_eq!(
        walkdir::WalkDir::new(&tree)
            .into_iter()
            .filter(|e| e.as_ref().unwrap().file_type().is_file())
            .count() as u64,
        count(&summary, "files")
    );
}

/// A `fileorg loadtest --serve-hello-world` server on a free port, and its address.
async fn hello_world_server() -> (crate::common::KillOnDrop, String) {
    let port = crate::common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = crate::common::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
            .args(["loadtest", "--serve-hello-world", &addr])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the hello-world server"),
    );
    crate::common::connect_when_up(port).await;
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_world_ceiling_serves_the_get_operation_mix() {
    let (_server, addr) = hello_world_server().await;
    let cwd = tempfile::tempdir().unwrap();
    let report_path = cwd.path().join("hello.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args([
            "loadtest",
            "--addr",
            &addr,
            "--hello-world",
            "--mix",
            "get-operation",
        ])
        .args([
            "--concurrent",
            "4",
            "--requests",
            "200",
            "--report",
            "--report-path",
        ])
        .arg(&report_path)
        .output()
        .await
        .expect("run fileorg loadtest");
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["options"]["hello_world"], true);
    assert_eq!(report["load"]["total_requests"], 200, "{report:#}");
    assert_eq!(report["load"]["success_rate"], 1.0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_offers_the_requested_rate_and_bad_rates_are_refused() {
    let (_server, addr) = hello_world_server().await;
    let cwd = tempfile::tempdir().unwrap();
    let report_path = cwd.path().join("open.json");
    let run = |extra: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
            .args(["loadtest", "--addr", &addr, "--hello-world"])
            .args(["--mix", "get-operation", "--concurrent", "4"])
            .args(extra)
            .arg("--report-path")
            .arg(&report_path)
            .output()
    };
    // 200 requests per second for 2 s over 4 clients: each client sends every
    // 20 ms on its own schedule, so at most 400 requests go out.
    let output = run(&["--rate", "200", "--duration", "2", "--report"])
        .await
        .expect("run fileorg loadtest");
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let load = &report["load"];
    assert_eq!(load["loop"], "open", "{report:#}");
    assert_eq!(load["offered_rate_rps"], 200.0, "{report:#}");
    assert_eq!(report["options"]["rate_rps"], 200.0, "{report:#}");
    let sent = load["total_requests"].as_u64().unwrap();
    assert!((100..=400).contains(&sent), "{sent} requests: {report:#}");
    assert_eq!(load["success_rate"], 1.0, "{report:#}");

    for bad in ["0", "-5", "NaN", "2000000"] {
        let flag = format!("--rate={bad}");
        let output = run(&[&flag, "--duration", "1"]).await.unwrap();
        assert!(!output.status.success(), "--rate {bad} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--rate"), "--rate {bad}: {stderr}");
    }
}
