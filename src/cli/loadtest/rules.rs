//! `--rules N`: the user gets N organizing rules before the organize (issue
//! 21's benchmark: the same organize with and without rules), and
//! PreviewRules is timed on the tree first.
//!
//! The rules are built to cost the most: all but the last match (almost)
//! nothing, so every file is tried against every rule, with every kind of
//! condition but the content type (which reads each file: measured apart
//! by its own PreviewRules call). The last rule moves the text files.

use std::time::Instant;

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, rule_action::Action, rule_condition::Condition,
    rule_service_client::RuleServiceClient,
};
use tonic::transport::Channel;

use super::{Session, bearer};

fn condition(c: Condition) -> pb::RuleCondition {
    pb::RuleCondition { condition: Some(c) }
}

/// Rule `i` of `n` (see the module docs).
fn rule(i: usize, n: usize) -> pb::Rule {
    let (conditions, r#match, action) = if i + 1 == n {
        (
            vec![condition(Condition::Extensions(pb::ExtensionSet {
                extensions: vec!["txt".into(), "md".into()],
            }))],
            pb::RuleMatch::All,
            Action::Move(pb::MoveAction {
                destination_template: "Text/{year}/{name}".into(),
            }),
        )
    } else {
        let conditions = match i % 5 {
            0 => vec![Condition::NameGlob(format!("never-{i}-*.jpg"))],
            1 => vec![Condition::NameRegex(format!(r"^IMG_{i}_\d+\.(jpe?g|png)$"))],
            2 => vec![
                Condition::Extensions(pb::ExtensionSet {
                    extensions: vec![format!("x{i}"), "jpg".into()],
                }),
                Condition::Size(pb::SizeRange {
                    min_bytes: Some(1 << 40),
                    max_bytes: None,
                }),
            ],
            3 => vec![
                Condition::UnderFolder(format!("loadtest/none-{i}")),
                Condition::Age(pb::AgeRange {
                    older_than_days: Some(3650),
                    newer_than_days: None,
                }),
            ],
            _ => vec![
                Condition::NameGlob(format!("*.never{i}")),
                Condition::IsDuplicate(true),
            ],
        };
        (
            conditions.into_iter().map(condition).collect(),
            if i % 5 == 4 {
                pb::RuleMatch::All
            } else {
                pb::RuleMatch::Any
            },
            Action::Move(pb::MoveAction {
                destination_template: format!("Rule{i}/{{name}}"),
            }),
        )
    };
    pb::Rule {
        display_name: format!("bench rule {i}"),
        r#match: r#match as i32,
        conditions,
        action: Some(pb::RuleAction {
            action: Some(action),
        }),
        ..Default::default()
    }
}

/// Creates the `n` rules.
pub async fn create(channel: &Channel, session: &Session, n: usize) -> anyhow::Result<()> {
    let mut client = RuleServiceClient::new(channel.clone());
    for i in 0..n {
        client
            .create_rule(bearer(
                pb::CreateRuleRequest {
                    rule: Some(rule(i, n)),
                },
                &session.token,
            ))
            .await
            .map_err(|s| anyhow::anyhow!("CreateRule: {}: {}", s.code(), s.message()))?;
    }
    Ok(())
}

/// One PreviewRules call on the first 10,000 files of `folder`, timed by
/// the client's clock.
async fn timed(
    channel: &Channel,
    session: &Session,
    folder: &str,
    rules: Vec<pb::Rule>,
) -> anyhow::Result<serde_json::Value> {
    let request = pb::PreviewRulesRequest {
        folder: folder.into(),
        rules,
        max_files: 10_000,
        ..Default::default()
    };
    let started = Instant::now();
    let answer = RuleServiceClient::new(channel.clone())
        .preview_rules(bearer(request, &session.token))
        .await
        .map_err(|s| anyhow::anyhow!("PreviewRules: {}: {}", s.code(), s.message()))?
        .into_inner();
    let secs = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "files": answer.entries.len(),
        "matched": answer.matched_count,
        "seconds": secs,
        "files_per_second": answer.entries.len() as f64 / secs,
    }))
}

/// PreviewRules on `folder` with the stored rules, then with the same rules
/// and one content-type rule first (every file is read): files per second.
pub async fn preview(
    channel: &Channel,
    session: &Session,
    folder: &str,
    n: usize,
) -> anyhow::Result<serde_json::Value> {
    let stored = timed(channel, session, folder, Vec::new()).await?;
    let mut sniffing: Vec<pb::Rule> = vec![pb::Rule {
        display_name: "images by content".into(),
        conditions: vec![condition(Condition::ContentType(pb::ContentTypeSet {
            content_types: vec!["image/webp".into()],
        }))],
        action: Some(pb::RuleAction {
            action: Some(Action::LeaveInPlace(pb::LeaveInPlaceAction {})),
        }),
        ..Default::default()
    }];
    sniffing.extend((0..n).map(|i| rule(i, n)));
    let with_content = timed(channel, session, folder, sniffing).await?;
    println!(
        "  PreviewRules: {:.0} files/s with the {n} rules, {:.0} files/s with a content-type rule first",
        stored["files_per_second"].as_f64().unwrap_or(0.0),
        with_content["files_per_second"].as_f64().unwrap_or(0.0)
    );
    Ok(serde_json::json!({"stored_rules": stored, "content_type_rule_first": with_content}))
}
