//! RuleService and rule-driven operations (issue 21) on real files and
//! Postgres: CRUD with etags, hostile rules, tenant isolation, PreviewRules,
//! a rule-driven organize applied then undone byte for byte (a trash rule
//! among them), and one killed mid-apply and recovered.

use std::time::Duration;

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationState, rule_action::Action, rule_condition::Condition,
    rule_service_client::RuleServiceClient,
};
use rand::{SeedableRng, rngs::StdRng};
use tonic::{Code, transport::Channel};

use crate::{
    common::{KillOnDrop, Options, TestApp, assert_code, bad_field, bearer, reason, tree},
    kills::{assert_records_match_disk, build_tree, moved_away, spawn_server},
    operations::{User, apply, create, organize, plan, records, undo_and_wait, user, wait_for},
};

pub(crate) fn rules(app: &TestApp) -> RuleServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();
    RuleServiceClient::new(channel)
}

fn condition(c: Condition) -> pb::RuleCondition {
    pb::RuleCondition { condition: Some(c) }
}

pub(crate) fn rule(name: &str, conditions: Vec<Condition>, action: Action) -> pb::Rule {
    pb::Rule {
        display_name: name.into(),
        conditions: conditions.into_iter().map(condition).collect(),
        action: Some(pb::RuleAction {
            action: Some(action),
        }),
        ..Default::default()
    }
}

pub(crate) fn move_to(template: &str) -> Action {
    Action::Move(pb::MoveAction {
        destination_template: template.into(),
    })
}

fn extensions(list: &[&str]) -> Condition {
    Condition::Extensions(pb::ExtensionSet {
        extensions: list.iter().map(|e| e.to_string()).collect(),
    })
}

pub(crate) async fn create_rule(
    app: &TestApp,
    user: &User,
    rule: pb::Rule,
) -> Result<pb::Rule, tonic::Status> {
    rules(app)
        .create_rule(bearer(
            pb::CreateRuleRequest { rule: Some(rule) },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

pub(crate) async fn preview(
    app: &TestApp,
    user: &User,
    request: pb::PreviewRulesRequest,
) -> Result<pb::PreviewRulesResponse, tonic::Status> {
    rules(app)
        .preview_rules(bearer(request, &user.token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_ordered_versioned_and_checked_against_their_etag() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "rules-crud").await;
    let late = create_rule(
        &app,
        &ann,
        pb::Rule {
            position: 10,
            ..rule("late", vec![extensions(&["pdf"])], move_to("Docs/{name}"))
        },
    )
    .await
    .unwrap();
    let early = create_rule(
        &app,
        &ann,
        rule(
            "early",
            vec![],
            Action::LeaveInPlace(pb::LeaveInPlaceAction {}),
        ),
    )
    .await
    .unwrap();
    assert_eq!((late.version, early.version), (1, 1));
    assert_eq!(early.r#match, pb::RuleMatch::All as i32);
    let listed = rules(&app)
        .list_rules(bearer(pb::ListRulesRequest::default(), &ann.token))
        .await
        .unwrap()
        .into_inner();
    let order: Vec<&str> = listed
        .rules
        .iter()
        .map(|r| r.display_name.as_str())
        .collect();
    assert_eq!(order, ["early", "late"], "position orders, not creation");

    // An update with the current etag: one version newer, new etag.
    let update = |rule: pb::Rule, mask: &[&str]| pb::UpdateRuleRequest {
        rule: Some(rule),
        update_mask: Some(prost_types::FieldMask {
            paths: mask.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let renamed = rules(&app)
        .update_rule(bearer(
            update(
                pb::Rule {
                    display_name: "later".into(),
                    position: -99,
                    ..late.clone()
                },
                &["display_name"],
            ),
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            renamed.display_name.as_str(),
            renamed.position,
            renamed.version
        ),
        ("later", 10, 2)
    );
    assert_ne!(renamed.etag, late.etag);
    // The etag read before that update is stale: refused, nothing changes.
    let stale = assert_code(
        rules(&app)
            .update_rule(bearer(
                update(
                    pb::Rule {
                        display_name: "lost update".into(),
                        ..late.clone()
                    },
                    &["display_name"],
                ),
                &ann.token,
            ))
            .await,
        Code::Aborted,
    );
    assert!(stale.message().contains("changed"), "{stale:?}");
    assert_eq!(reason(&stale), "ETAG_MISMATCH");
    let stale_delete = assert_code(
        rules(&app)
            .delete_rule(bearer(
                pb::DeleteRuleRequest {
                    name: late.name.clone(),
                    etag: late.etag.clone(),
                },
                &ann.token,
            ))
            .await,
        Code::Aborted,
    );
    assert_eq!(reason(&stale_delete), "ETAG_MISMATCH");
    // The same version, written without quotes or as a weak etag, is the
    // same etag (one parser); something else is no etag of ours.
    for same in [
        late.etag.trim_matches('"').to_string(),
        format!("W/{}", late.etag),
    ] {
        assert_code(
            rules(&app)
                .delete_rule(bearer(
                    pb::DeleteRuleRequest {
                        name: late.name.clone(),
                        etag: same,
                    },
                    &ann.token,
                ))
                .await,
            Code::Aborted,
        );
    }
    let garbage = assert_code(
        rules(&app)
            .delete_rule(bearer(
                pb::DeleteRuleRequest {
                    name: late.name.clone(),
                    etag: "\"v1\"".into(),
                },
                &ann.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&garbage), "etag");
    let kept = rules(&app)
        .get_rule(bearer(
            pb::GetRuleRequest {
                name: late.name.clone(),
            },
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, renamed);
    // An unknown mask path names update_mask.
    let bad_mask = assert_code(
        rules(&app)
            .update_rule(bearer(update(renamed.clone(), &["version"]), &ann.token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_mask), "update_mask");
    // Deleting with the current etag works, once.
    let delete = pb::DeleteRuleRequest {
        name: renamed.name.clone(),
        etag: renamed.etag.clone(),
    };
    rules(&app)
        .delete_rule(bearer(delete.clone(), &ann.token))
        .await
        .unwrap();
    assert_code(
        rules(&app).delete_rule(bearer(delete, &ann.token)).await,
        Code::NotFound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rules_are_refused_naming_the_field() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RULES_MAX_PER_USER", "3".into())],
        ..Default::default()
    })
    .await;
    let eve = user(&app, "rules-hostile").await;
    let trash = || Action::Trash(pb::TrashAction {});
    let cases: Vec<(pb::Rule, &str)> = vec![
        // Far more compiled program than the size limit allows, from a
        // short pattern (Unicode classes, counted repetitions).
        (
            rule(
                "big",
                vec![Condition::NameRegex(r"(?:\w{100}){100}".into())],
                trash(),
            ),
            "rule.conditions[0].name_regex",
        ),
        (
            rule(
                "long",
                vec![Condition::NameRegex("a".repeat(100_000))],
                trash(),
            ),
            "rule.conditions[0].name_regex",
        ),
        (
            rule(
                "bad",
                vec![Condition::NameRegex("(unclosed".into())],
                trash(),
            ),
            "rule.conditions[0].name_regex",
        ),
        (
            rule(
                "glob",
                vec![
                    extensions(&["pdf"]),
                    Condition::NameGlob("*a".repeat(50_000)),
                ],
                trash(),
            ),
            "rule.conditions[1].name_glob",
        ),
        (
            rule("dots", vec![], move_to("../{name}")),
            "rule.action.move.destination_template",
        ),
        (
            rule("abs", vec![], move_to("/etc/{name}")),
            "rule.action.move.destination_template",
        ),
        (
            rule("trash", vec![], move_to(".trash/{name}")),
            "rule.action.move.destination_template",
        ),
        (
            rule(
                "rename",
                vec![],
                Action::Rename(pb::RenameAction {
                    name_template: "../{name}".into(),
                }),
            ),
            "rule.action.rename.name_template",
        ),
        (
            rule(
                "category",
                vec![],
                Action::SetCategory(pb::SetCategoryAction {
                    category: "../up".into(),
                }),
            ),
            "rule.action.set_category.category",
        ),
        (
            rule(
                "folder",
                vec![Condition::UnderFolder("../other".into())],
                trash(),
            ),
            "rule.conditions[0].under_folder",
        ),
        (
            rule(
                "many",
                (0..21).map(|_| extensions(&["pdf"])).collect(),
                trash(),
            ),
            "rule.conditions",
        ),
        (
            rule(
                "size",
                vec![Condition::Size(pb::SizeRange {
                    min_bytes: Some(10),
                    max_bytes: Some(1),
                })],
                trash(),
            ),
            "rule.conditions[0].size",
        ),
        (rule("empty", vec![], trash()), ""),
        (
            pb::Rule {
                action: None,
                ..rule("none", vec![], trash())
            },
            "rule.action",
        ),
        (
            pb::Rule {
                conditions: vec![pb::RuleCondition { condition: None }],
                ..rule("unset", vec![], trash())
            },
            "rule.conditions[0]",
        ),
        (rule("", vec![], trash()), "rule.display_name"),
    ];
    for (bad, field) in cases {
        let shown = format!("{:?}", bad.display_name);
        let result = create_rule(&app, &eve, bad).await;
        if field.is_empty() {
            // A rule without conditions matches every file: allowed.
            result.unwrap();
            continue;
        }
        let status = assert_code(result, Code::InvalidArgument);
        assert_eq!(bad_field(&status), field, "{shown}: {status:?}");
    }
    // Catastrophic backtracking cannot happen in a linear-time engine:
    // the classic pattern is accepted, and matching it is instant.
    let catastrophic = create_rule(
        &app,
        &eve,
        rule(
            "redos",
            vec![Condition::NameRegex("(a+)+$".into())],
            trash(),
        ),
    )
    .await
    .unwrap();
    tree::write(
        &eve.root,
        "in/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        b"x",
    );
    // Three rules now (the catch-all above, this one and one more): the
    // fourth is over RULES_MAX_PER_USER.
    create_rule(&app, &eve, rule("third", vec![], trash()))
        .await
        .unwrap();
    let full = assert_code(
        create_rule(&app, &eve, rule("fourth", vec![], trash())).await,
        Code::FailedPrecondition,
    );
    assert!(full.message().contains('3'), "{full:?}");
    // Too many draft rules for a preview: INVALID_ARGUMENT on `rules`; a
    // bad draft names its index.
    let drafts = assert_code(
        preview(
            &app,
            &eve,
            pb::PreviewRulesRequest {
                folder: "in".into(),
                rules: (0..4)
                    .map(|i| rule(&format!("d{i}"), vec![], trash()))
                    .collect(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&drafts), "rules");
    let draft = assert_code(
        preview(
            &app,
            &eve,
            pb::PreviewRulesRequest {
                folder: "in".into(),
                rules: vec![
                    rule("ok", vec![], trash()),
                    rule("bad", vec![], move_to("a/../../{name}")),
                ],
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        bad_field(&draft),
        "rules[1].action.move.destination_template"
    );
    // The stored rules preview fine, the ReDoS one included.
    let shown = preview(
        &app,
        &eve,
        pb::PreviewRulesRequest {
            folder: "in".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(shown.entries.len(), 1);
    assert_ne!(
        shown.entries[0].rule, catastrophic.name,
        "the catch-all comes first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_rules_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "rules-owner").await;
    let bob = user(&app, "rules-other").await;
    let mine = create_rule(&app, &ann, rule("mine", vec![], move_to("Ann/{name}")))
        .await
        .unwrap();
    let get = rules(&app)
        .get_rule(bearer(
            pb::GetRuleRequest {
                name: mine.name.clone(),
            },
            &bob.token,
        ))
        .await;
    assert_code(get, Code::NotFound);
    let update = rules(&app)
        .update_rule(bearer(
            pb::UpdateRuleRequest {
                rule: Some(pb::Rule {
                    display_name: "stolen".into(),
                    ..mine.clone()
                }),
                update_mask: None,
            },
            &bob.token,
        ))
        .await;
    assert_code(update, Code::NotFound);
    let delete = rules(&app)
        .delete_rule(bearer(
            pb::DeleteRuleRequest {
                name: mine.name.clone(),
                etag: String::new(),
            },
            &bob.token,
        ))
        .await;
    assert_code(delete, Code::NotFound);
    let listed = rules(&app)
        .list_rules(bearer(pb::ListRulesRequest::default(), &bob.token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.rules.is_empty());
    // Bob's preview and Bob's organize use Bob's (no) rules.
    tree::write(&bob.root, "in/a.txt", b"bob");
    let shown = preview(
        &app,
        &bob,
        pb::PreviewRulesRequest {
            folder: "in".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(shown.entries.len(), 1);
    assert_eq!(shown.entries[0].rule, "");
    let op = create(&app, &bob, organize("in")).await;
    let done = wait_for(&app, &bob, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.rule_set_version, 0);
    assert!(bob.root.join("in/Documents/a.txt").exists());
    // Ann's rule is untouched.
    let still = rules(&app)
        .get_rule(bearer(
            pb::GetRuleRequest {
                name: mine.name.clone(),
            },
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still, mine);
}

/// A tree for every action: a PDF to move, an old log to trash, a photo to
/// rename, a big file to re-categorize, a note left in place, and a file no
/// rule matches (the template's).
fn rule_tree(user: &User) {
    tree::write(&user.root, "in/invoice-7.pdf", b"%PDF-1.4 invoice seven");
    tree::write(&user.root, "in/old/debug.log", b"old log lines");
    tree::set_mtime(&user.root, "in/old/debug.log", 1_000_000_000);
    tree::write(
        &user.root,
        "in/IMG_0042.jpg",
        b"\xff\xd8\xff\xe0 not really a jpeg",
    );
    tree::set_mtime(&user.root, "in/IMG_0042.jpg", 1_700_000_000);
    tree::write(&user.root, "in/big.bin", &vec![7u8; 10_000]);
    tree::write(&user.root, "in/keep-me.txt", b"stay");
    tree::write(&user.root, "in/song.mp3", b"ID3 a song");
}

async fn rule_set(app: &TestApp, user: &User) -> Vec<pb::Rule> {
    let mut made = Vec::new();
    for r in [
        rule(
            "keep",
            vec![Condition::NameGlob("keep-*".into())],
            Action::LeaveInPlace(pb::LeaveInPlaceAction {}),
        ),
        rule(
            "papers",
            vec![extensions(&["pdf"])],
            move_to("Papers/{year}/{name}"),
        ),
        rule(
            "old logs",
            vec![
                extensions(&["log"]),
                Condition::Age(pb::AgeRange {
                    older_than_days: Some(90),
                    newer_than_days: None,
                }),
            ],
            Action::Trash(pb::TrashAction {}),
        ),
        rule(
            "photos",
            vec![Condition::NameRegex(r"^IMG_\d+".into())],
            Action::Rename(pb::RenameAction {
                name_template: "{year}-{month}-{name}".into(),
            }),
        ),
        rule(
            "big",
            vec![Condition::Size(pb::SizeRange {
                min_bytes: Some(5_000),
                max_bytes: None,
            })],
            Action::SetCategory(pb::SetCategoryAction {
                category: "Large".into(),
            }),
        ),
    ] {
        made.push(create_rule(app, user, r).await.unwrap());
    }
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_driven_organize_is_applied_then_undone_byte_for_byte() {
    let app = TestApp::spawn().await;
    let ria = user(&app, "rules-undo").await;
    rule_tree(&ria);
    let original = tree::snapshot(&ria.root);
    let made = rule_set(&app, &ria).await;

    // A dry run records every decision, moves nothing.
    let planned = plan(&app, &ria, organize("in")).await;
    assert!(planned.apply_rules.is_none(), "unset: the default");
    assert!(planned.rule_set_version >= made.len() as i64, "{planned:?}");
    assert_eq!(tree::snapshot(&ria.root), original);
    let journal = records(&app, &planned.name).await;
    let by_path = |p: &str| {
        journal
            .iter()
            .find(|r| r.original_path == p)
            .unwrap_or_else(|| panic!("no record of {p}"))
            .clone()
    };
    let id_of = |name: &str| {
        made.iter()
            .find(|r| r.display_name == name)
            .unwrap()
            .name
            .trim_start_matches("rules/")
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    let operation_id = planned.name.trim_start_matches("operations/");
    for (path, rule, new_path) in [
        ("in/keep-me.txt", Some("keep"), None),
        (
            "in/invoice-7.pdf",
            Some("papers"),
            Some(format!("in/Papers/{}/invoice-7.pdf", chrono_year())),
        ),
        (
            "in/old/debug.log",
            Some("old logs"),
            Some(format!(".trash/{operation_id}/in/old/debug.log")),
        ),
        (
            "in/IMG_0042.jpg",
            Some("photos"),
            Some("in/2023-11-IMG_0042.jpg".to_string()),
        ),
        (
            "in/big.bin",
            Some("big"),
            Some("in/Large/big.bin".to_string()),
        ),
        ("in/song.mp3", None, Some("in/Audio/song.mp3".to_string())),
    ] {
        let record = by_path(path);
        assert_eq!(record.new_path, new_path, "{record:?}");
        let _ = rule.map(id_of);
    }
    // Which rule (and version) decided is on each record, over the API.
    let listed = fileorganizer::pb::fileorganizer::v1::file_service_client::FileServiceClient::new(
        Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    )
    .list_file_records(bearer(
        pb::ListFileRecordsRequest {
            parent: planned.name.clone(),
            page_size: 100,
            ..Default::default()
        },
        &ria.token,
    ))
    .await
    .unwrap()
    .into_inner();
    for r in &listed.file_records {
        let expected = match r.original_path.as_str() {
            "in/keep-me.txt" => Some("keep"),
            "in/invoice-7.pdf" => Some("papers"),
            "in/old/debug.log" => Some("old logs"),
            "in/IMG_0042.jpg" => Some("photos"),
            "in/big.bin" => Some("big"),
            _ => None,
        };
        match expected {
            Some(name) => {
                assert_eq!(r.rule, format!("rules/{}", id_of(name)), "{r:?}");
                assert_eq!(r.rule_version, 1);
            }
            None => assert_eq!((r.rule.as_str(), r.rule_version), ("", 0), "{r:?}"),
        }
    }
    let keep = listed
        .file_records
        .iter()
        .find(|r| r.original_path == "in/keep-me.txt")
        .unwrap();
    assert_eq!(keep.status, pb::FileRecordStatus::Skipped as i32);
    assert!(keep.reason.contains("keep"), "{keep:?}");

    // Apply: the disk is what the plan said.
    apply(&app, &ria, &planned.name).await;
    let done = wait_for(&app, &ria, &planned.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 5);
    assert!(ria.root.join("in/2023-11-IMG_0042.jpg").exists());
    assert!(
        ria.root
            .join(format!(".trash/{operation_id}/in/old/debug.log"))
            .exists()
    );
    assert!(ria.root.join("in/keep-me.txt").exists());

    // Undo: byte for byte the original tree, the trashed file included.
    let undone = undo_and_wait(&app, &ria, &planned.name).await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    let mut now = tree::snapshot(&ria.root);
    now.retain(|path, _| !path.starts_with(".trash/"));
    assert_eq!(now, original, "undo did not restore the tree");

    // The same organize without rules uses the template only.
    let plain = plan(
        &app,
        &ria,
        pb::Operation {
            apply_rules: Some(false),
            ..organize("in")
        },
    )
    .await;
    assert_eq!(plain.rule_set_version, 0);
    let journal = records(&app, &plain.name).await;
    let pdf = journal
        .iter()
        .find(|r| r.original_path == "in/invoice-7.pdf")
        .unwrap();
    assert_eq!(pdf.new_path.as_deref(), Some("in/Documents/invoice-7.pdf"));
}

/// The year of the PDF's modification time (written just now).
fn chrono_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_says_which_rule_decides_and_why_without_changing_anything() {
    let app = TestApp::spawn().await;
    let pia = user(&app, "rules-preview").await;
    rule_tree(&pia);
    let made = rule_set(&app, &pia).await;
    let before = tree::snapshot(&pia.root);
    let shown = preview(
        &app,
        &pia,
        pb::PreviewRulesRequest {
            folder: "in".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        tree::snapshot(&pia.root),
        before,
        "a preview changes nothing"
    );
    assert!(!shown.truncated);
    assert_eq!(shown.entries.len(), 6);
    assert_eq!(shown.matched_count, 5);
    let entry = |p: &str| shown.entries.iter().find(|e| e.path == p).unwrap();
    let log = entry("in/old/debug.log");
    assert_eq!(log.rule, made[2].name);
    assert_eq!(log.matched_conditions, [0, 1]);
    assert!(log.explanation.contains("older than 90 days"), "{log:?}");
    let photo = entry("in/IMG_0042.jpg");
    assert_eq!(photo.destination, "in/2023-11-IMG_0042.jpg");
    assert!(photo.explanation.contains("name_regex"), "{photo:?}");
    assert_eq!(entry("in/keep-me.txt").destination, "");
    assert_eq!(entry("in/song.mp3").rule, "");

    // Capped: the first files in name order, and `truncated`.
    let capped = preview(
        &app,
        &pia,
        pb::PreviewRulesRequest {
            folder: "in".into(),
            max_files: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(capped.entries.len(), 2);
    assert!(capped.truncated);

    // A sample of paths; a missing one and a folder are reported, not fatal.
    let sample = preview(
        &app,
        &pia,
        pb::PreviewRulesRequest {
            paths: vec!["in/big.bin".into(), "in/nope".into(), "in/old".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sample.entries[0].rule, made[4].name);
    assert_eq!(sample.entries[0].destination, "Large/big.bin");
    assert!(!sample.entries[1].error.is_empty());
    assert_eq!(sample.entries[2].error, "not a regular file");

    // Content types come from magic bytes, not names.
    tree::write(
        &pia.root,
        "sniff/photo.dat",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0",
    );
    tree::write(&pia.root, "sniff/fake.png", b"plain text");
    let sniffed = preview(
        &app,
        &pia,
        pb::PreviewRulesRequest {
            folder: "sniff".into(),
            rules: vec![rule(
                "images",
                vec![Condition::ContentType(pb::ContentTypeSet {
                    content_types: vec!["image/*".into()],
                })],
                move_to("Pictures/{name}"),
            )],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let matched: Vec<(&str, &str)> = sniffed
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.rule.as_str()))
        .collect();
    assert_eq!(
        matched,
        [("sniff/fake.png", ""), ("sniff/photo.dat", "rules/-0")]
    );

    for (request, field) in [
        (
            pb::PreviewRulesRequest {
                folder: "../x".into(),
                ..Default::default()
            },
            "folder",
        ),
        (
            pb::PreviewRulesRequest {
                paths: vec!["a".into(), "/etc/passwd".into()],
                ..Default::default()
            },
            "paths[1]",
        ),
        (
            pb::PreviewRulesRequest {
                folder: "in".into(),
                max_files: -1,
                ..Default::default()
            },
            "max_files",
        ),
    ] {
        let status = assert_code(preview(&app, &pia, request).await, Code::InvalidArgument);
        assert_eq!(bad_field(&status), field);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_driven_organize_killed_mid_apply_recovers_without_loss() {
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let kim = user(&app, "rules-kill").await;
    let mut rng = StdRng::seed_from_u64(21);
    let before = build_tree(&kim.root, "in", 120, &mut rng);
    // Rules for most files (move, rename, trash), the template for the rest.
    for r in [
        rule("pdf", vec![extensions(&["pdf"])], move_to("Papers/{name}")),
        rule(
            "zip",
            vec![extensions(&["zip"])],
            Action::Trash(pb::TrashAction {}),
        ),
        rule(
            "csv",
            vec![extensions(&["csv"])],
            Action::Rename(pb::RenameAction {
                name_template: "data-{name}".into(),
            }),
        ),
        rule(
            "dups",
            vec![Condition::IsDuplicate(true)],
            move_to("Copies/{name}"),
        ),
    ] {
        create_rule(&app, &kim, r).await.unwrap();
    }
    let mut child: KillOnDrop = spawn_server(&app, 40);
    let op = create(&app, &kim, organize("in")).await;
    // Killed once a few files have moved (bounded wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while moved_away(&kim.root, &before) < 10 {
        assert!(tokio::time::Instant::now() < deadline, "nothing moved");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill();
    let killed_at = moved_away(&kim.root, &before);
    assert!(killed_at < before.len(), "killed too late to test anything");
    // A new process reclaims the job once its heartbeat is stale.
    let _second = spawn_server(&app, 0);
    let done = wait_for(
        &app,
        &kim,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    assert!(done.rule_set_version > 0);
    assert_records_match_disk(
        &app,
        &kim.root,
        &op.name,
        &before,
        &["completed", "duplicate", "skipped"],
    )
    .await;
    let journal = records(&app, &op.name).await;
    assert!(
        journal.iter().any(|r| r
            .new_path
            .as_deref()
            .is_some_and(|p| p.starts_with(".trash/"))),
        "the trash rule moved something"
    );
    // And it undoes to the tree it started from.
    let undone = undo_and_wait(&app, &kim, &op.name).await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    let mut now = tree::snapshot(&kim.root);
    now.retain(|path, _| !path.starts_with(".trash/"));
    assert_eq!(now, before);
}
