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
                Access::Scope(scope) => format!("`{scope}`"),
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
