//! Conversions between database rows and protobuf messages.

use chrono::{DateTime, Utc};

use crate::{db::models, pb::fileorganizer::v1 as pb};

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub fn user(user: &models::User) -> pb::User {
    pb::User {
        name: format!("users/{}", user.id),
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: match user.role.as_str() {
            "admin" => pb::UserRole::Admin,
            _ => pb::UserRole::User,
        } as i32,
        storage_used_bytes: user.storage_used_bytes,
        storage_quota_bytes: user.storage_quota_bytes,
        create_time: Some(timestamp(user.created_at)),
        update_time: Some(timestamp(user.updated_at)),
        last_login_time: user.last_login_at.map(timestamp),
    }
}

pub const API_KEY_COLLECTION: &str = "api-keys/";

pub fn api_key(key: &models::ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: format!("{API_KEY_COLLECTION}{}", key.id),
        display_name: key.name.clone(),
        prefix: key.prefix.clone(),
        scopes: key.scopes.iter().flatten().cloned().collect(),
        expire_time: key.expires_at.map(timestamp),
        create_time: Some(timestamp(key.created_at)),
        last_used_time: key.last_used_at.map(timestamp),
        revoke_time: key.revoked_at.map(timestamp),
        revoked: key.revoked_at.is_some(),
    }
}
