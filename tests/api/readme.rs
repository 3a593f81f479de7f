//! The README's API table lists exactly the RPCs of the contract.

use std::collections::BTreeSet;

use prost::Message;

use crate::common::repo_root;

#[test]
fn readme_api_table_lists_every_rpc_once() {
    let set =
        prost_types::FileDescriptorSet::decode(fileorganizer::pb::FILE_DESCRIPTOR_SET).unwrap();
    let contract: BTreeSet<(String, String)> = set
        .file
        .iter()
        .filter(|f| f.package() == "fileorganizer.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .map(|m| (s.name().to_string(), m.name().to_string()))
        })
        .collect();

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut listed = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() == 6 && cells[1].ends_with("Service") && matches!(cells[4], "yes" | "no") {
            listed.push((cells[1].to_string(), cells[2].to_string()));
        }
    }
    let listed_set: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "an RPC is listed twice");
    assert_eq!(listed_set, contract, "README API table and proto/ disagree");
}

/// The README's scopes table is the server's access table (`auth::access`).
#[test]
fn readme_scopes_table_is_the_access_table() {
    use fileorganizer::auth::access::{Access, RPCS, short_name};

    let server: BTreeSet<(String, String)> = RPCS
        .iter()
        .filter_map(|(path, access)| {
            let scope = match access {
                Access::Public => return None,
                Access::Authenticated => "none (any valid credential)".to_string(),
                Access::Scope(scope) | Access::ScopeOrWatchToken(scope) => format!("`{scope}`"),
            };
            Some((scope, short_name(path).to_string()))
        })
        .collect();

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("### API-key scopes")
        .nth(1)
        .expect("README has an API-key scopes section");
    let mut listed = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 4 || cells[1] == "scope" || cells[1].starts_with("---") {
            continue;
        }
        let rpcs = cells[2].split(" (").next().unwrap();
        for rpc in rpcs.split(", ") {
            listed.push((cells[1].to_string(), rpc.to_string()));
        }
    }
    let listed_set: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "an RPC is listed twice");
    assert_eq!(
        listed_set, server,
        "README scopes table and auth::access disagree"
    );
}

/// The README's curl lines for raw uploads, the download, the archive import and export (the `sh`
/// blocks after "Uploading files"), run as written by bash through a real Envoy, with only
/// `localhost:8080` pointed at the test's Envoy and `TOKEN` set to a real access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_upload_and_import_lines_work_through_envoy() {
    use rand::RngCore;

    let app = crate::common::TestApp::spawn().await;
    let envoy = crate::common::envoy::Envoy::start(app.addr.port()).await;
    let token = app
        .register(&crate::common::TestApp::email("readme"))
        .await
        .access_token;

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let after = readme
        .split("Uploading files")
        .nth(1)
        .expect("README has the uploading section");
    let section = after.split("\n## ").next().unwrap();
    let script: String = section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect::<Vec<_>>()
        .join("");
    assert!(
        script.contains("files:upload?path=inbox/big.iso"),
        "{script}"
    );
    assert!(
        script.contains("files:import?path=inbox/photos"),
        "{script}"
    );
    assert!(
        script.contains("files:downloadArchive?path=inbox/photos"),
        "{script}"
    );
    let script = script
        .lines()
        .filter(|l| !l.starts_with("TOKEN=<"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("localhost:8080", &format!("127.0.0.1:{}", envoy.port));

    let dir = tempfile::tempdir().unwrap();
    let mut big = vec![0u8; 3 * 1024 * 1024 + 7];
    rand::rng().fill_bytes(&mut big);
    std::fs::write(dir.path().join("big.iso"), &big).unwrap();
    std::fs::write(dir.path().join("photo.jpg"), b"\xff\xd8\xff\xe0 a photo").unwrap();
    std::fs::create_dir_all(dir.path().join("album/2019")).unwrap();
    std::fs::write(dir.path().join("album/a.jpg"), b"first photo").unwrap();
    std::fs::write(dir.path().join("album/2019/b.jpg"), b"second photo").unwrap();
    let tar = std::process::Command::new("tar")
        .args(["-C", "album", "-cf", "photos.tar", "."])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(tar.success());

    let dir_path = dir.path().to_path_buf();
    let bash_token = token.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("TOKEN", bash_token)
            .current_dir(dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "README curl lines failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Each upload answered with its file, the import with its counts.
    assert!(stdout.contains(r#""path":"inbox/big.iso""#), "{stdout}");
    assert!(stdout.contains(r#""path":"inbox/photo.jpg""#), "{stdout}");
    assert!(
        stdout.contains(r#""modify_time":"2019-06-15T12:00:00Z""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""file_count":"2""#), "{stdout}");
    assert!(stdout.contains(r#""skipped_count":"0""#), "{stdout}");
    // The download line wrote the stored big.iso over the local one: the same bytes.
    assert_eq!(std::fs::read(dir.path().join("big.iso")).unwrap(), big);
    // The export line saved the imported folder as photos.zip (the name the server gave).
    let zip = std::fs::read(dir.path().join("photos.zip")).expect("curl -OJ wrote photos.zip");
    let listed: Vec<String> = crate::exports::python_zip_listing(&zip)
        .into_iter()
        .map(|(name, (size, _))| format!("{name} {size}"))
        .collect();
    assert_eq!(listed, ["2019/ 0", "2019/b.jpg 12", "a.jpg 11"]);
    // The imported files are there, with their content.
    let client = reqwest::Client::new();
    for (path, content) in [
        ("inbox/photos/a.jpg", &b"first photo"[..]),
        ("inbox/photos/2019/b.jpg", &b"second photo"[..]),
    ] {
        let response = client
            .get(envoy.url(&format!("/api/v1/files:download?path={path}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(&response.bytes().await.unwrap()[..], content, "{path}");
    }
}

/// The README's REST walkthrough (its `sh` blocks, from "## REST walkthrough" to the next
/// section), run as written by bash through a real Envoy with only `localhost:8080` pointed at
/// the test's Envoy: register, log in, upload, a dry run watched with a watch token, the plan,
/// apply, watched again, and the CSV export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_rest_walkthrough_runs_through_envoy() {
    let app = crate::common::TestApp::spawn().await;
    let envoy = crate::common::envoy::Envoy::start(app.addr.port()).await;
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## REST walkthrough\n")
        .nth(1)
        .expect("README has the REST walkthrough")
        .split("\n## ")
        .next()
        .unwrap();
    let script: String = section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect::<Vec<_>>()
        .join("")
        .replace("localhost:8080", &format!("127.0.0.1:{}", envoy.port));
    for step in [
        ":upload?path=inbox/report.pdf",
        ":watchToken",
        "curl -sN \"$API$WATCH\"",
        ":apply",
        ":export?format=csv",
    ] {
        assert!(
            script.contains(step),
            "the walkthrough lost {step}: {script}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.pdf"), b"%PDF-1.4\n a report").unwrap();
    std::fs::write(dir.path().join("photo.jpg"), b"\xff\xd8\xff\xe0 a photo").unwrap();
    let dir_path = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the README walkthrough failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The uploads answered with their files.
    assert!(stdout.contains(r#""path":"inbox/report.pdf""#), "{stdout}");
    // Two watches by token, as server-sent events, the first to PLANNED, the second to the end.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        // An event can follow the previous command's output on its line (the
        // uploads' JSON ends without a newline).
        .filter_map(|l| l.find("data: ").map(|at| &l[at + "data: ".len()..]))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let planned = events
        .iter()
        .position(|e| e["state"] == "OPERATION_STATE_PLANNED")
        .unwrap_or_else(|| panic!("no PLANNED event: {stdout}"));
    let last = events.last().unwrap();
    assert!(planned < events.len() - 1, "{stdout}");
    assert_eq!(last["state"], "OPERATION_STATE_SUCCEEDED", "{stdout}");
    assert_eq!(last["counters"]["files_moved"], "2", "{stdout}");
    // The plan, as the jq line prints it.
    assert!(
        stdout.contains("inbox/report.pdf -> sorted/Documents/report.pdf"),
        "{stdout}"
    );
    // The CSV export: its header and a row per file.
    assert!(
        stdout.contains("seq,original_path,new_path,status"),
        "{stdout}"
    );
    assert!(
        stdout.contains("inbox/photo.jpg,sorted/Images/photo.jpg,completed"),
        "{stdout}"
    );
}
