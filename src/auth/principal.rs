//! The authenticated caller, as handlers see it.

use uuid::Uuid;

use super::Scopes;
use crate::{
    domain::Role,
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A JWT access token, identified by its `jti`.
    AccessToken { jti: String, session: Option<Uuid> },
    /// An API key, identified by its row id.
    ApiKey { id: Uuid },
}

/// Put into the request extensions by the auth layer for every
/// authenticated call; handlers take it with [`Principal::from_request`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    /// The user's role.
    pub role: Role,
    pub credential: Credential,
    /// What this credential may do (`auth::scopes`): all of the role's
    /// scopes, or an API key's own.
    pub scopes: Scopes,
}

impl Principal {
    /// The principal of a request that passed the auth layer. Its absence on
    /// a non-public RPC is a wiring bug, reported as INTERNAL.
    pub fn from_request<T>(request: &tonic::Request<T>) -> AppResult<Principal> {
        request
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| AppError::internal("no principal on an authenticated RPC"))
    }

    /// Whether the credential is restricted to fewer scopes than the role
    /// grants (an API key with scopes).
    pub fn is_restricted(&self) -> bool {
        self.scopes != Scopes::of_role(self.role)
    }

    pub fn require_admin(&self) -> AppResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::PermissionDenied {
                reason: ErrorReason::PermissionDenied,
                message: "this RPC requires the admin role".into(),
                metadata: Vec::new(),
            })
        }
    }
}
