//! ListCategories and the custom-category CRUD.
//!
//! Built-in categories come from `BuiltIn::ALL` (ids like `categories/images`)
//! and are read-only: changing or deleting one is FAILED_PRECONDITION.
//! Custom ones are rows of `categories` (ids are UUIDs), validated with the
//! categorizer's own rules (`CustomRule::validate`) before they are stored,
//! so an organize never meets a rule it cannot apply. Display names are
//! unique per user case-insensitively, among the built-in names too, and name
//! a folder under the default layout, so they are one path component.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Files, PageToken};
use crate::{
    api::convert,
    auth::Principal,
    db::{
        self,
        categories::{CategoryRow, CategoryValues},
    },
    engine::categorize::{BuiltIn, CustomRule},
    error::{AppError, AppResult},
    pagination,
    pb::fileorganizer::v1::{self as pb, ErrorReason},
};

const DEFAULT_PAGE_SIZE: i32 = 100;
const COLLECTION: &str = "categories/";
const TOKEN_TAG: u8 = b'c';
/// Custom categories one user may have.
const MAX_CUSTOM_CATEGORIES: i64 = 200;
/// Extensions, and globs, one category may have.
const MAX_PATTERNS: usize = 100;
const MAX_NAME_CHARS: usize = 64;
const MAX_GLOB_BYTES: usize = 256;
const MAX_ICON_CHARS: usize = 64;

/// What a `categories/{id}` name refers to.
enum CategoryId {
    BuiltIn(BuiltIn),
    Custom(Uuid),
}

fn parse_category_name(raw: &str, field: &str) -> AppResult<CategoryId> {
    let id = raw
        .strip_prefix(COLLECTION)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| AppError::invalid(field, "must be categories/{id}"))?;
    if let Ok(uuid) = Uuid::parse_str(id) {
        return Ok(CategoryId::Custom(uuid));
    }
    BuiltIn::ALL
        .into_iter()
        .find(|b| b.id() == id)
        .map(CategoryId::BuiltIn)
        .ok_or_else(|| AppError::not_found(raw.to_string()))
}

fn read_only(b: BuiltIn) -> AppError {
    AppError::FailedPrecondition {
        message: format!(
            "{COLLECTION}{} is a built-in category and cannot be changed or deleted; \
             create a custom category instead",
            b.id()
        ),
    }
}

fn built_in(b: BuiltIn, counts: &HashMap<String, i64>) -> pb::Category {
    pb::Category {
        name: format!("{COLLECTION}{}", b.id()),
        display_name: b.name().to_string(),
        built_in: true,
        extensions: b.extensions().iter().map(|e| e.to_string()).collect(),
        globs: Vec::new(),
        color: String::new(),
        icon: String::new(),
        file_count: counts.get(b.name()).copied().unwrap_or(0),
        create_time: None,
        update_time: None,
    }
}

fn custom(row: &CategoryRow, counts: &HashMap<String, i64>) -> pb::Category {
    pb::Category {
        name: format!("{COLLECTION}{}", row.id),
        display_name: row.name.clone(),
        built_in: false,
        extensions: row.extensions.iter().flatten().cloned().collect(),
        globs: row.globs.iter().flatten().cloned().collect(),
        color: row.color.clone().unwrap_or_default(),
        icon: row.icon.clone().unwrap_or_default(),
        file_count: counts.get(&row.name).copied().unwrap_or(0),
        create_time: Some(convert::timestamp(row.created_at)),
        update_time: Some(convert::timestamp(row.updated_at)),
    }
}

/// Validates and normalizes a category's writable fields.
fn validate(category: &pb::Category) -> AppResult<CategoryValues> {
    let name = category.display_name.trim();
    let name_error = |description: &str| AppError::invalid("category.display_name", description);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(name_error("must be 1 to 64 characters"));
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(name_error(
            "must not contain '/', '\\' or control characters (it names a folder)",
        ));
    }
    if name.starts_with('.') {
        return Err(name_error("must not start with '.' (it names a folder)"));
    }

    if category.extensions.len() > MAX_PATTERNS {
        return Err(AppError::invalid(
            "category.extensions",
            "at most 100 extensions",
        ));
    }
    let mut extensions: Vec<String> = Vec::new();
    for raw in &category.extensions {
        let rule = CustomRule {
            name: name.to_string(),
            extensions: vec![raw.clone()],
            ..Default::default()
        };
        rule.validate()
            .map_err(|e| AppError::invalid("category.extensions", e.to_string()))?;
        let trimmed = raw.trim();
        let ext = trimmed.strip_prefix('.').unwrap_or(trimmed).to_lowercase();
        if !extensions.contains(&ext) {
            extensions.push(ext);
        }
    }

    if category.globs.len() > MAX_PATTERNS {
        return Err(AppError::invalid("category.globs", "at most 100 globs"));
    }
    let mut globs: Vec<String> = Vec::new();
    for raw in &category.globs {
        if raw.len() > MAX_GLOB_BYTES {
            return Err(AppError::invalid(
                "category.globs",
                format!("{raw:?} is longer than {MAX_GLOB_BYTES} bytes"),
            ));
        }
        let rule = CustomRule {
            name: name.to_string(),
            globs: vec![raw.clone()],
            ..Default::default()
        };
        rule.validate()
            .map_err(|e| AppError::invalid("category.globs", e.to_string()))?;
        if !globs.contains(raw) {
            globs.push(raw.clone());
        }
    }
    if extensions.is_empty() && globs.is_empty() {
        return Err(AppError::invalid(
            "category.extensions",
            "a category needs at least one extension or glob",
        ));
    }

    let color = match category.color.trim() {
        "" => None,
        c if c.len() == 7
            && c.starts_with('#')
            && c[1..].chars().all(|ch| ch.is_ascii_hexdigit()) =>
        {
            Some(c.to_ascii_lowercase())
        }
        _ => {
            return Err(AppError::invalid(
                "category.color",
                "must be empty or a color like #1a2b3c",
            ));
        }
    };
    let icon = match category.icon.trim() {
        "" => None,
        i if i.chars().count() <= MAX_ICON_CHARS
            && i.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') =>
        {
            Some(i.to_string())
        }
        _ => {
            return Err(AppError::invalid(
                "category.icon",
                "must be empty or an icon name of up to 64 characters a-z, 0-9, '-' and '_'",
            ));
        }
    };
    Ok(CategoryValues {
        name: name.to_string(),
        extensions,
        globs,
        color,
        icon,
    })
}

fn name_taken(name: &str) -> AppError {
    AppError::AlreadyExists {
        reason: ErrorReason::AlreadyExists,
        message: format!("a category named {name:?} already exists (names ignore case)"),
    }
}

/// Built-in names are taken for every user.
fn check_not_built_in_name(name: &str) -> AppResult<()> {
    let lower = name.to_lowercase();
    if BuiltIn::ALL
        .iter()
        .any(|b| b.name().to_lowercase() == lower)
    {
        return Err(name_taken(name));
    }
    Ok(())
}

/// A unique violation on the owner-and-name index is a taken name.
fn taken_on_conflict(name: &str) -> impl FnOnce(diesel::result::Error) -> AppError + '_ {
    move |error| match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => name_taken(name),
        other => other.into(),
    }
}

/// Sort key of the combined listing: built-ins in their order, then custom
/// ones by lower-cased name and id.
fn sort_key(position: &Listed<'_>) -> (u8, String, Vec<u8>) {
    match position {
        Listed::BuiltIn(index, _) => (0, format!("{index:04}"), Vec::new()),
        Listed::Custom(row) => (1, row.name.to_lowercase(), row.id.as_bytes().to_vec()),
    }
}

enum Listed<'a> {
    BuiltIn(usize, BuiltIn),
    Custom(&'a CategoryRow),
}

fn encode_key(key: &(u8, String, Vec<u8>)) -> Vec<u8> {
    let mut out = vec![key.0];
    out.extend_from_slice(&(key.1.len() as u32).to_le_bytes());
    out.extend_from_slice(key.1.as_bytes());
    out.extend_from_slice(&key.2);
    out
}

fn decode_key(raw: &[u8]) -> AppResult<(u8, String, Vec<u8>)> {
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    if raw.len() < 5 {
        return Err(bad());
    }
    let len = u32::from_le_bytes(raw[1..5].try_into().map_err(|_| bad())?) as usize;
    let text = raw.get(5..5 + len).ok_or_else(bad)?;
    Ok((
        raw[0],
        String::from_utf8(text.to_vec()).map_err(|_| bad())?,
        raw[5 + len..].to_vec(),
    ))
}

pub(super) async fn list_categories(
    files: &Files,
    principal: Principal,
    req: pb::ListCategoriesRequest,
) -> AppResult<pb::ListCategoriesResponse> {
    let limit = pagination::page_size(req.page_size, DEFAULT_PAGE_SIZE)? as usize;
    let fingerprint = PageToken::fingerprint(&[principal.user_id.as_bytes()]);
    let after = PageToken::decode(&req.page_token, TOKEN_TAG, fingerprint)?
        .map(|raw| decode_key(&raw))
        .transpose()?;
    let mut conn = files.state.db.get().await?;
    let rows = db::categories::list_for_user(&mut conn, principal.user_id).await?;
    let counts = db::categories::file_counts(&mut conn, principal.user_id).await?;

    let mut listed: Vec<Listed<'_>> = BuiltIn::ALL
        .into_iter()
        .enumerate()
        .map(|(i, b)| Listed::BuiltIn(i, b))
        .chain(rows.iter().map(Listed::Custom))
        .collect();
    listed.sort_by_cached_key(sort_key);
    let mut page: Vec<Listed<'_>> = listed
        .into_iter()
        .filter(|l| after.as_ref().is_none_or(|a| sort_key(l) > *a))
        .take(limit + 1)
        .collect();
    let next_page_token = if page.len() > limit {
        page.truncate(limit);
        page.last()
            .map(|l| PageToken::encode(TOKEN_TAG, fingerprint, &encode_key(&sort_key(l))))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListCategoriesResponse {
        categories: page
            .iter()
            .map(|l| match l {
                Listed::BuiltIn(_, b) => built_in(*b, &counts),
                Listed::Custom(row) => custom(row, &counts),
            })
            .collect(),
        next_page_token,
    })
}

pub(super) async fn create_category(
    files: &Files,
    principal: Principal,
    req: pb::CreateCategoryRequest,
) -> AppResult<pb::Category> {
    let category = req
        .category
        .ok_or_else(|| AppError::invalid("category", "is required"))?;
    let values = validate(&category)?;
    check_not_built_in_name(&values.name)?;
    let mut conn = files.state.db.get().await?;
    if db::categories::count_for_user(&mut conn, principal.user_id).await? >= MAX_CUSTOM_CATEGORIES
    {
        return Err(AppError::FailedPrecondition {
            message: format!("you already have {MAX_CUSTOM_CATEGORIES} custom categories"),
        });
    }
    let row = db::categories::insert(&mut conn, principal.user_id, &values)
        .await
        .map_err(taken_on_conflict(&values.name))?;
    Ok(custom(&row, &HashMap::new()))
}

pub(super) async fn update_category(
    files: &Files,
    principal: Principal,
    req: pb::UpdateCategoryRequest,
) -> AppResult<pb::Category> {
    let patch = req
        .category
        .ok_or_else(|| AppError::invalid("category", "is required"))?;
    let id = match parse_category_name(&patch.name, "category.name")? {
        CategoryId::BuiltIn(b) => return Err(read_only(b)),
        CategoryId::Custom(id) => id,
    };
    let mut conn = files.state.db.get().await?;
    let current = db::categories::find_for_user(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(patch.name.clone()))?;
    let mut merged = custom(&current, &HashMap::new());
    let paths: Vec<&str> = match &req.update_mask {
        Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
        // No mask: every non-empty writable field.
        _ => [
            (!patch.display_name.is_empty()).then_some("display_name"),
            (!patch.extensions.is_empty()).then_some("extensions"),
            (!patch.globs.is_empty()).then_some("globs"),
            (!patch.color.is_empty()).then_some("color"),
            (!patch.icon.is_empty()).then_some("icon"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    for path in paths {
        match path {
            "display_name" => merged.display_name = patch.display_name.clone(),
            "extensions" => merged.extensions = patch.extensions.clone(),
            "globs" => merged.globs = patch.globs.clone(),
            "color" => merged.color = patch.color.clone(),
            "icon" => merged.icon = patch.icon.clone(),
            other => {
                return Err(AppError::invalid(
                    "update_mask",
                    format!(
                        "{other:?} cannot be updated; use display_name, extensions, globs, \
                         color or icon"
                    ),
                ));
            }
        }
    }
    let values = validate(&merged)?;
    check_not_built_in_name(&values.name)?;
    let row = db::categories::update(&mut conn, principal.user_id, id, &values)
        .await
        .map_err(taken_on_conflict(&values.name))?
        .ok_or_else(|| AppError::not_found(patch.name.clone()))?;
    let counts = db::categories::file_counts(&mut conn, principal.user_id).await?;
    Ok(custom(&row, &counts))
}

pub(super) async fn delete_category(
    files: &Files,
    principal: Principal,
    req: pb::DeleteCategoryRequest,
) -> AppResult<()> {
    let id = match parse_category_name(&req.name, "name")? {
        CategoryId::BuiltIn(b) => return Err(read_only(b)),
        CategoryId::Custom(id) => id,
    };
    let mut conn = files.state.db.get().await?;
    if !db::categories::delete(&mut conn, principal.user_id, id).await? {
        return Err(AppError::not_found(req.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(name: &str, exts: &[&str], globs: &[&str]) -> pb::Category {
        pb::Category {
            display_name: name.into(),
            extensions: exts.iter().map(|s| s.to_string()).collect(),
            globs: globs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn field_of(result: AppResult<CategoryValues>) -> String {
        match result {
            Err(AppError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field_and_normalizes() {
        let ok = validate(&pb::Category {
            color: "#A0b1C2".into(),
            icon: "receipt".into(),
            ..category(" Invoices ", &[".INV", "inv", "tar.gz"], &["invoice-*.pdf"])
        })
        .unwrap();
        assert_eq!(ok.name, "Invoices");
        assert_eq!(ok.extensions, ["inv", "tar.gz"]);
        assert_eq!(ok.color.as_deref(), Some("#a0b1c2"));
        for (bad, field) in [
            (category("", &["x"], &[]), "category.display_name"),
            (category("a/b", &["x"], &[]), "category.display_name"),
            (category(".hidden", &["x"], &[]), "category.display_name"),
            (
                category(&"n".repeat(65), &["x"], &[]),
                "category.display_name",
            ),
            (category("N", &[], &[]), "category.extensions"),
            (category("N", &["a/b"], &[]), "category.extensions"),
            (category("N", &[".."], &[]), "category.extensions"),
            (category("N", &[], &["["]), "category.globs"),
            (category("N", &[], &[""]), "category.globs"),
        ] {
            assert_eq!(field_of(validate(&bad)), field, "{bad:?}");
        }
        let bad_color = pb::Category {
            color: "red".into(),
            ..category("N", &["x"], &[])
        };
        assert_eq!(field_of(validate(&bad_color)), "category.color");
        let bad_icon = pb::Category {
            icon: "<script>".into(),
            ..category("N", &["x"], &[])
        };
        assert_eq!(field_of(validate(&bad_icon)), "category.icon");
    }

    #[test]
    fn names_and_keys() {
        assert!(matches!(
            parse_category_name("categories/images", "name"),
            Ok(CategoryId::BuiltIn(BuiltIn::Images))
        ));
        assert!(matches!(
            parse_category_name("categories/nope", "name"),
            Err(AppError::NotFound { .. })
        ));
        assert!(matches!(
            parse_category_name("images", "name"),
            Err(AppError::InvalidArgument { .. })
        ));
        assert!(check_not_built_in_name("IMAGES").is_err());
        assert!(check_not_built_in_name("Invoices").is_ok());
        let key = (1u8, "invoices".to_string(), vec![1, 2, 3]);
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        assert!(decode_key(&[1, 9, 0, 0, 0]).is_err());
    }
}
