//! CI smoke run of `fileorg loadtest` (issue 7) and the tool's other modes.
//! The JSON report is checked for completeness and for errors, never for
//! times.
//!
//! The report's slow-query section needs a PostgreSQL started with
//! `shared_preload_libraries = pg_stat_statements`. The machine's server is
//! left as it is configured: the smoke run uses a private, throwaway cluster
//! that preloads it (see [`PrivatePostgres`]).

use std::process::Stdio;

use crate::common::{KillOnDrop, TestApp};

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

/// `fileorg serve` as a child process on `database_url`, every rate limit
/// raised (refusing a load test is not what they are for), and its port.
async fn serve(app: &TestApp, database_url: &str) -> (KillOnDrop, u16) {
    let port = crate::common::free_port();
    let server = KillOnDrop(
        app.fileorg_command(&["serve"])
            .env("DATABASE_URL", database_url)
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .envs(crate::common::RATE_LIMITS.map(|k| (k, "1000000")))
            .spawn()
            .expect("start fileorg serve"),
    );
    crate::common::connect_when_up(port).await;
    (server, port)
}

/// The phases of the organize's breakdown, in pipeline order.
const PHASES: [&str; 9] = [
    "queued",
    "scan",
    "categorize",
    "hash",
    "plan",
    "journal",
    "apply",
    "cleanup",
    "report",
];

/// The CI smoke run of issue 7, at its scale: 20,000 files organized through
/// the API, then 10 s of the realistic mix from 20 clients, against a real
/// `fileorg serve` process on a PostgreSQL with pg_stat_statements. Every
/// section of the JSON report is there and nothing failed. No timing
/// assertions: times are only checked to be times.
/// The report's sections, and the options the smoke run chose.
fn assert_header(report: &serde_json::Value) {
    for key in [
        "tool",
        "version",
        "timestamp",
        "target",
        "machine",
        "options",
        "organize",
        "load",
        "slow_queries",
    ] {
        assert!(!report[key].is_null(), "missing {key}: {report:#}");
    }
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let options = &report["options"];
    assert_eq!(options["files"], 20000);
    assert_eq!(options["concurrent"], 20);
    assert_eq!(options["duration_secs"], 10);
    assert_eq!(options["mix"], "realistic");
}

/// The organize: every file accounted for; the per-phase breakdown: every
/// phase is a time, the ones every organize goes through were gone
/// through, in pipeline order.
fn assert_organize(organize: &serde_json::Value) {
    assert_eq!(organize["succeeded"], true, "{organize:#}");
    assert_eq!(organize["state"], "succeeded");
    assert_eq!(organize["files"], 20000);
    let tree = &organize["tree"];
    assert_eq!(tree["files"], 20000);
    for key in [
        "duplicate_copies",
        "hard_links",
        "large_files",
        "directories",
    ] {
        assert!(tree[key].as_u64().unwrap() > 0, "tree.{key}: {tree:#}");
    }
    let counters = &organize["counters"];
    let count = |key: &str| counters[key].as_u64().unwrap();
    // Hard links of an already scanned inode are skipped, not scanned.
    assert_eq!(count("files_scanned") + count("files_skipped"), 20000);
    assert_eq!(count("files_skipped"), tree["hard_links"].as_u64().unwrap());
    assert_eq!(count("files_moved"), count("files_scanned"));
    assert_eq!(count("files_failed"), 0);
    assert_eq!(counters["duplicates_found"], tree["duplicate_copies"]);

    // The per-phase breakdown: every phase is a time; the ones every
    // organize goes through were gone through, in pipeline order.
    let end_to_end = organize["end_to_end_seconds"].as_f64().unwrap();
    assert!(end_to_end > 0.0);
    let per_second = organize["files_per_second"].as_f64().unwrap();
    assert!(
        (per_second * end_to_end - 20000.0).abs() < 1.0,
        "{organize:#}"
    );
    let phases = &organize["phase_seconds"];
    let mut server_side = 0.0;
    for phase in PHASES {
        let seconds = phases[phase]
            .as_f64()
            .unwrap_or_else(|| panic!("phase {phase}: {phases:#}"));
        assert!(seconds >= 0.0, "phase {phase}: {phases:#}");
        if phase != "report" && phase != "queued" {
            server_side += seconds;
        }
    }
    assert!(server_side <= end_to_end, "{organize:#}");
    let order: Vec<&str> = organize["phase_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(order, PHASES, "{organize:#}");
    assert!(
        organize["search_names_indexed"]["seconds_after_organize"].is_f64(),
        "{organize:#}"
    );
}

/// The load: error-free, every method of the mix exercised.
fn assert_load(load: &serde_json::Value) {
    assert_eq!(load["loop"], "closed");
    assert_eq!(load["clients"], 20);
    let ran = load["duration_seconds"].as_f64().unwrap();
    assert!((10.0..60.0).contains(&ran), "{load:#}");
    let total = load["total_requests"].as_u64().unwrap();
    assert!(total > 0, "{load:#}");
    assert_eq!(load["successful_requests"], total, "{load:#}");
    assert_eq!(load["failed_requests"], 0, "{load:#}");
    assert_eq!(load["success_rate"], 1.0, "{load:#}");
    assert_eq!(load["failures_by_code"], serde_json::json!({}), "{load:#}");
    assert!(load["throughput_rps"].as_f64().unwrap() > 0.0);
    let latency = &load["latency_ms"];
    let ms: Vec<f64> = ["min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
        .iter()
        .map(|k| latency[k].as_f64().unwrap_or_else(|| panic!("latency {k}")))
        .collect();
    assert!(ms.windows(2).all(|w| w[0] <= w[1]), "{latency:#}");
    assert!(latency["avg_ms"].is_number());
    let mut by_method = 0;
    for method in [
        "GetOperation",
        "ListOperations",
        "ListFileRecords",
        "GetOperationReport",
        "SearchFiles",
        "Login",
    ] {
        let n = load["by_method"][method]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{method} never sent: {load:#}"));
        assert!(n > 0, "{method}: {load:#}");
        by_method += n;
    }
    assert_eq!(by_method, total, "{load:#}");
}

/// The server process, sampled from /proc during both parts.
fn assert_server_samples(report: &serde_json::Value) {
    for server in [&report["organize"]["server"], &report["load"]["server"]] {
        assert!(server["peak_rss_mb"].as_f64().unwrap() > 0.0, "{server:#}");
        assert!(
            server["avg_cpu_percent"].as_f64().unwrap() > 0.0,
            "{server:#}"
        );
    }
}

/// The database's view: the run's own statements, the journal among them.
fn assert_slow_queries(slow: &serde_json::Value) {
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
            assert!(
                statement["mean_ms"].as_f64().unwrap() >= 0.0,
                "{statement:#}"
            );
        }
    }
    assert!(
        slow["by_total_time"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["query"].as_str().unwrap().contains("file_records")),
        "{slow:#}"
    );
}

/// Where pg_stat_statements is loaded but not created, the report says so
/// (the private cluster's `postgres` database).
async fn assert_reason_without_the_extension(postgres: &PrivatePostgres, dir: &std::path::Path) {
    let (_hello, hello) = hello_world_server().await;
    let elsewhere = dir.join("not-created.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(["loadtest", "--addr", &hello, "--hello-world"])
        .args([
            "--mix",
            "get-operation",
            "--concurrent",
            "1",
            "--requests",
            "5",
        ])
        .args(["--report", "--report-path"])
        .arg(&elsewhere)
        .env("DATABASE_URL", postgres.url("postgres"))
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&elsewhere).unwrap()).unwrap();
    assert_eq!(report["slow_queries"]["collected"], false, "{report:#}");
    assert!(
        report["slow_queries"]["reason"]
            .as_str()
            .unwrap()
            .contains("CREATE EXTENSION pg_stat_statements"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_smoke_at_20000_files_and_10_seconds_writes_a_complete_error_free_report() {
    let app = TestApp::spawn().await;
    let postgres = PrivatePostgres::start();
    let url = postgres.url("fo_loadtest_smoke");
    fileorganizer::db::ensure_database(&url).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let (server, port) = serve(&app, &url).await;

    let cwd = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(["loadtest", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--files", "20000", "--seed", "7"])
        .args(["--concurrent", "20", "--duration", "10"])
        .args(["--server-pid", &server.id().to_string(), "--report"])
        .current_dir(cwd.path())
        .env("DATABASE_URL", &url)
        .env("STORAGE_ROOT", &app.state.config.storage_root)
        .env_remove("GRPC_ADDR")
        .output()
        .await
        .expect("run fileorg loadtest");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "loadtest failed: {output:?}");
    let path = cwd.path().join("data/reports/load_test_results.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report written")).unwrap();

    assert_header(&report);
    assert_organize(&report["organize"]);
    assert_load(&report["load"]);
    assert_server_samples(&report);
    assert_slow_queries(&report["slow_queries"]);
    assert_reason_without_the_extension(&postgres, cwd.path()).await;
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

/// `--tenants` (issue 24 item 4, `scripts/bench-tenants.sh` at a tiny
/// scale): four users, each with their tree in three folders, every
/// organize queued in one burst user by user, one worker. Every operation
/// succeeds, the fairness figure is within the claim's bound of 1 (first
/// come, first served let the second user's first organize wait behind the
/// first user's other two), and GetOperation ran beside them without a
/// failure. No times are checked, only that they are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_run_reports_waits_fairness_and_get_operation() {
    let app = TestApp::spawn_with(crate::common::Options {
        env: vec![("WORKERS", "1".into())],
        ..Default::default()
    })
    .await;
    let cwd = tempfile::tempdir().unwrap();
    let report_path = cwd.path().join("tenants.json");
    let addr = app.addr.to_string();
    let output = app
        .fileorg_command(&["loadtest", "--addr", &addr, "--tenants", "4"])
        .args(["--files", "60", "--ops-per-tenant", "3"])
        .args(["--poll-rate", "50", "--concurrent", "2", "--report"])
        .arg("--report-path")
        .arg(&report_path)
        .stderr(Stdio::piped())
        .output()
        .expect("run fileorg loadtest");
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let tenants = &report["tenants"];
    assert_eq!(tenants["states"]["succeeded"], 12, "{report:#}");
    assert_eq!(tenants["files"], 4 * 60, "{report:#}");
    assert!(tenants["files_moved"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(tenants["dry_run"], false);
    let fairness = &tenants["fairness"];
    assert!(
        fairness["most_started_ahead_by_one_user"].as_u64().unwrap() <= 1,
        "{report:#}"
    );
    assert_eq!(fairness["operations_over_bound"], 0, "{report:#}");
    for figure in ["wait_seconds", "end_to_end_seconds", "user_done_seconds"] {
        assert!(tenants[figure]["p95"].as_f64().unwrap() >= 0.0, "{figure}");
        assert_eq!(
            tenants[figure]["count"],
            if figure == "user_done_seconds" { 4 } else { 12 }
        );
    }
    assert!(tenants["total_seconds"].as_f64().unwrap() > 0.0);
    let polls = &tenants["get_operation"];
    assert!(polls["total_requests"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(polls["failed_requests"], 0, "{report:#}");
    assert_eq!(report["options"]["tenants"], 4);
}
