//! The authenticated caller, as handlers see it.

use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Role {
        match raw {
            "admin" => Role::Admin,
            _ => Role::User,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

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
    pub role: Role,
    pub credential: Credential,
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

    pub fn require_admin(&self) -> AppResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::PermissionDenied {
                message: "this RPC requires the admin role".into(),
            })
        }
    }
}
