//! AuthService: accounts, sessions and API keys.

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, parts, respond};
use crate::{
    auth::{
        Credential, Principal, Scope, Scopes, api_keys, email::Email, password, scopes,
        secret_hash, sessions, tokens::new_refresh_token,
    },
    db::{
        self,
        credentials::Rotation,
        models::{self, NewApiKey, NewRefreshToken, NewUser},
    },
    error::{AppError, AppResult},
    infra::ratelimit::Decision,
    layers::RequestContext,
    pagination,
    pb::fileorganizer::v1::{self as pb, ErrorReason, auth_service_server::AuthService},
    state::AppState,
};

const MAX_DISPLAY_NAME_CHARS: usize = 100;
const MAX_SCOPES: usize = 20;

pub struct Auth {
    state: AppState,
}

impl Auth {
    pub fn new(state: AppState) -> Self {
        Auth { state }
    }
}

/// A new session: access token, refresh token, its lifetime.
struct Session {
    access_token: String,
    refresh_token: String,
    expires_in: i32,
}

fn check_display_name(field: &str, name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(AppError::invalid(field, "must be at most 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// The scope names to store on a key the caller asked for with `requested`
/// (see `auth::scopes`): known names only, never a scope the caller lacks.
/// No names means "all of the caller's": stored as no names (the role's
/// full access, as before scopes) when the caller has full access, else
/// as the caller's own scopes, so a scoped key cannot mint a broader one.
fn key_scopes(principal: &Principal, requested: &[String]) -> AppResult<Vec<String>> {
    if requested.len() > MAX_SCOPES {
        return Err(AppError::invalid("api_key.scopes", "at most 20 scopes"));
    }
    let mut wanted = Scopes::NONE;
    for name in requested {
        let scope = Scope::parse(name).ok_or_else(|| {
            AppError::invalid(
                "api_key.scopes",
                format!(
                    "{name:?} is not a scope; the scopes are {}",
                    scopes::all_names()
                ),
            )
        })?;
        wanted.insert(scope);
    }
    if wanted.is_empty() {
        return Ok(if principal.is_restricted() {
            principal.scopes.names()
        } else {
            Vec::new()
        });
    }
    if let Some(lacking) = wanted.missing_from(principal.scopes).iter().next() {
        return Err(AppError::scope_missing(
            lacking.as_str(),
            format!("cannot grant the scope '{lacking}': the caller does not have it"),
        ));
    }
    Ok(wanted.names())
}

fn invalid_credentials() -> AppError {
    AppError::unauthenticated(ErrorReason::InvalidCredentials, "invalid email or password")
}

use crate::db::audit::record_request as audit;

impl Auth {
    /// Starts a session: a new refresh-token family and an access token.
    async fn start_session(
        &self,
        conn: &mut AsyncPgConnection,
        user: &models::User,
    ) -> AppResult<Session> {
        let family = Uuid::now_v7();
        let (refresh_token, hash) = new_refresh_token();
        db::credentials::insert_refresh_token(
            conn,
            &NewRefreshToken {
                id: Uuid::now_v7(),
                user_id: user.id,
                family_id: family,
                token_hash: &hash,
                expires_at: Utc::now() + self.refresh_ttl(),
            },
        )
        .await?;
        self.session(user, family, refresh_token)
    }

    fn session(
        &self,
        user: &models::User,
        family: Uuid,
        refresh_token: String,
    ) -> AppResult<Session> {
        Ok(Session {
            access_token: self.state.tokens.issue(user.id, user.role, family)?,
            refresh_token,
            expires_in: self.state.tokens.ttl().as_secs() as i32,
        })
    }

    fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.state.config.refresh_token_ttl)
            .unwrap_or(chrono::Duration::days(30))
    }

    async fn register(
        &self,
        ctx: RequestContext,
        req: pb::RegisterRequest,
    ) -> AppResult<pb::RegisterResponse> {
        let email = Email::parse(&req.email).map_err(|e| AppError::invalid("email", e))?;
        password::check_policy(&req.password).map_err(|e| AppError::invalid("password", e))?;
        let display_name = check_display_name("display_name", &req.display_name)?;
        let hash = password::hash(req.password).await?;

        let mut conn = self.state.db.get().await?;
        let user = db::users::insert(
            &mut conn,
            &NewUser {
                id: Uuid::now_v7(),
                email: email.as_str(),
                password_hash: &hash,
                display_name: &display_name,
            },
        )
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::AlreadyExists { .. } => AppError::AlreadyExists {
                reason: ErrorReason::EmailTaken,
                message: "an account with this email already exists".into(),
            },
            other => other,
        })?;
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        let session = self.start_session(&mut conn, &user).await?;
        audit(
            &mut conn,
            &ctx,
            Some(user.id),
            "auth.register",
            "success",
            None,
            serde_json::json!({}),
        )
        .await;
        Ok(pb::RegisterResponse {
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            token_type: "Bearer".into(),
            expires_in: session.expires_in,
            user: Some(convert::user(&user)),
        })
    }

    async fn login(
        &self,
        ctx: RequestContext,
        failures: Option<LoginFailures>,
        req: pb::LoginRequest,
    ) -> AppResult<pb::LoginResponse> {
        let email = Email::parse(&req.email).map_err(|e| AppError::invalid("email", e))?;
        if req.password.is_empty() {
            return Err(AppError::invalid("password", "is required"));
        }
        if req.password.len() > password::MAX_BYTES {
            // Cannot match any stored password; refuse before hashing.
            if let Some(failures) = &failures {
                failures.record(&self.state).await;
            }
            return Err(invalid_credentials());
        }
        let mut conn = self.state.db.get().await?;
        let user = db::users::find_by_email(&mut conn, email.as_str()).await?;
        // Always run one argon2 verification, against a dummy hash when the
        // account does not exist, so timing does not reveal which emails exist.
        let ok =
            password::verify(req.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let user = match user {
            Some(user) if ok && !user.disabled => user,
            other => {
                let reason = match &other {
                    None => "unknown_email",
                    Some(u) if u.disabled && ok => "disabled",
                    Some(_) => "wrong_password",
                };
                audit(
                    &mut conn,
                    &ctx,
                    other.as_ref().map(|u| u.id),
                    "auth.login",
                    "failure",
                    None,
                    serde_json::json!({ "reason": reason }),
                )
                .await;
                if let Some(failures) = &failures {
                    failures.record(&self.state).await;
                }
                return Err(invalid_credentials());
            }
        };
        let user = db::users::record_login(&mut conn, user.id).await?;
        self.state
            .cache
            .invalidate(&[("profile", user.id.to_string())])
            .await;
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        let session = self.start_session(&mut conn, &user).await?;
        audit(
            &mut conn,
            &ctx,
            Some(user.id),
            "auth.login",
            "success",
            None,
            serde_json::json!({}),
        )
        .await;
        Ok(pb::LoginResponse {
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            token_type: "Bearer".into(),
            expires_in: session.expires_in,
            user: Some(convert::user(&user)),
        })
    }

    async fn refresh(
        &self,
        ctx: RequestContext,
        req: pb::RefreshTokenRequest,
    ) -> AppResult<pb::RefreshTokenResponse> {
        let presented = req.refresh_token.trim();
        if presented.is_empty() {
            return Err(AppError::invalid("refresh_token", "is required"));
        }
        let invalid = || {
            AppError::unauthenticated(
                ErrorReason::RefreshTokenInvalid,
                "the refresh token is invalid, expired or revoked",
            )
        };
        let (next_token, next_hash) = new_refresh_token();
        let mut conn = self.state.db.get().await?;
        let rotation = db::credentials::rotate_refresh_token(
            &mut conn,
            &secret_hash(presented),
            &next_hash,
            self.state.config.refresh_token_ttl,
        )
        .await?;
        match rotation {
            Rotation::Invalid => Err(invalid()),
            Rotation::Reused { user_id, family_id } => {
                sessions::sessions_ended(&self.state.cache, &[family_id]).await;
                audit(
                    &mut conn,
                    &ctx,
                    Some(user_id),
                    "auth.refresh_token.reused",
                    "denied",
                    Some(&format!("sessions/{family_id}")),
                    serde_json::json!({ "revoked_family": family_id }),
                )
                .await;
                Err(AppError::unauthenticated(
                    ErrorReason::RefreshTokenReused,
                    "this refresh token was already used; the session has been revoked, log in again",
                ))
            }
            Rotation::Rotated { user_id, next } => {
                let user = db::users::find(&mut conn, user_id)
                    .await?
                    .filter(|u| !u.disabled);
                let Some(user) = user else {
                    db::credentials::revoke_family(&mut conn, next.family_id).await?;
                    sessions::sessions_ended(&self.state.cache, &[next.family_id]).await;
                    return Err(invalid());
                };
                let session = self.session(&user, next.family_id, next_token)?;
                Ok(pb::RefreshTokenResponse {
                    access_token: session.access_token,
                    refresh_token: session.refresh_token,
                    token_type: "Bearer".into(),
                    expires_in: session.expires_in,
                    user: Some(convert::user(&user)),
                })
            }
        }
    }

    async fn logout(
        &self,
        ctx: RequestContext,
        principal: Principal,
        req: pb::LogoutRequest,
    ) -> AppResult<pb::LogoutResponse> {
        let mut conn = self.state.db.get().await?;
        let (revoked, ended) = if req.all_sessions {
            let families =
                db::credentials::revoke_user_sessions(&mut conn, principal.user_id, None).await?;
            (families.len(), families)
        } else if !req.refresh_token.trim().is_empty() {
            let token = db::credentials::find_refresh_token(
                &mut conn,
                principal.user_id,
                &secret_hash(req.refresh_token.trim()),
            )
            .await?
            .ok_or_else(|| AppError::not_found("refresh token"))?;
            let revoked = db::credentials::revoke_family(&mut conn, token.family_id).await?;
            (revoked, vec![token.family_id])
        } else if let Credential::AccessToken {
            session: Some(family),
            ..
        } = principal.credential
        {
            let revoked = db::credentials::revoke_family(&mut conn, family).await?;
            (revoked, vec![family])
        } else {
            return Err(AppError::invalid(
                "refresh_token",
                "is required when not logged in with an access token (or set all_sessions)",
            ));
        };
        // The sessions' access tokens stop working too (`auth::sessions`).
        sessions::sessions_ended(&self.state.cache, &ended).await;
        audit(
            &mut conn,
            &ctx,
            Some(principal.user_id),
            "auth.logout",
            "success",
            None,
            serde_json::json!({ "revoked": revoked, "all_sessions": req.all_sessions }),
        )
        .await;
        Ok(pb::LogoutResponse {
            revoked_sessions: revoked as i32,
        })
    }

    async fn current_user(&self, principal: &Principal) -> AppResult<models::User> {
        let mut conn = self.state.db.get().await?;
        db::users::find(&mut conn, principal.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))
    }

    async fn update_current_user(
        &self,
        ctx: RequestContext,
        principal: Principal,
        req: pb::UpdateCurrentUserRequest,
    ) -> AppResult<pb::User> {
        let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        for path in &paths {
            if path != "display_name" {
                return Err(AppError::invalid(
                    "update_mask",
                    format!("{path:?} is not updatable; only \"display_name\" is"),
                ));
            }
        }
        let display_name = match &req.user {
            Some(u) if !paths.is_empty() || !u.display_name.is_empty() => {
                Some(check_display_name("user.display_name", &u.display_name)?)
            }
            None if !paths.is_empty() => Some(String::new()),
            _ => None,
        };
        let change_password = !req.new_password.is_empty();
        if display_name.is_none() && !change_password {
            return Err(AppError::invalid(
                "update_mask",
                "nothing to update: set user.display_name or new_password",
            ));
        }
        if change_password {
            password::check_policy(&req.new_password)
                .map_err(|e| AppError::invalid("new_password", e))?;
            if req.current_password.is_empty() {
                return Err(AppError::invalid(
                    "current_password",
                    "is required to change the password",
                ));
            }
        }

        let mut user = self.current_user(&principal).await?;
        let mut conn = self.state.db.get().await?;
        if change_password {
            let ok =
                password::verify(req.current_password, Some(user.password_hash.clone())).await?;
            if !ok {
                audit(
                    &mut conn,
                    &ctx,
                    Some(user.id),
                    "auth.password.change",
                    "failure",
                    None,
                    serde_json::json!({ "reason": "wrong_current_password" }),
                )
                .await;
                return Err(AppError::invalid(
                    "current_password",
                    "is not the current password",
                ));
            }
            let hash = password::hash(req.new_password).await?;
            user = db::users::set_password_hash(&mut conn, user.id, &hash).await?;
            let keep = match principal.credential {
                Credential::AccessToken { session, .. } => session,
                Credential::ApiKey { .. } => None,
            };
            let ended = db::credentials::revoke_user_sessions(&mut conn, user.id, keep).await?;
            sessions::sessions_ended(&self.state.cache, &ended).await;
            let revoked = ended.len();
            audit(
                &mut conn,
                &ctx,
                Some(user.id),
                "auth.password.change",
                "success",
                None,
                serde_json::json!({ "revoked_sessions": revoked }),
            )
            .await;
        }
        if let Some(name) = display_name {
            user = db::users::set_display_name(&mut conn, user.id, &name).await?;
        }
        self.state
            .cache
            .invalidate(&[("profile", user.id.to_string())])
            .await;
        Ok(convert::user(&user))
    }

    async fn create_api_key(
        &self,
        ctx: RequestContext,
        principal: Principal,
        req: pb::CreateApiKeyRequest,
    ) -> AppResult<pb::CreateApiKeyResponse> {
        let key = req
            .api_key
            .ok_or_else(|| AppError::invalid("api_key", "is required"))?;
        let name = check_display_name("api_key.display_name", &key.display_name)?;
        if name.is_empty() {
            return Err(AppError::invalid("api_key.display_name", "is required"));
        }
        let scopes = key_scopes(&principal, &key.scopes)?;
        let expires_at = match &key.expire_time {
            None => None,
            Some(ts) => {
                let t = convert::from_timestamp(ts).ok_or_else(|| {
                    AppError::invalid("api_key.expire_time", "is not a valid time")
                })?;
                if t <= Utc::now() {
                    return Err(AppError::invalid(
                        "api_key.expire_time",
                        "must be in the future",
                    ));
                }
                Some(t)
            }
        };
        let generated = api_keys::generate();
        let mut conn = self.state.db.get().await?;
        let stored = db::credentials::insert_api_key(
            &mut conn,
            &NewApiKey {
                id: Uuid::now_v7(),
                user_id: principal.user_id,
                name: &name,
                prefix: &generated.prefix,
                token_hash: &generated.hash,
                scopes: scopes.into_iter().map(Some).collect(),
                expires_at,
            },
        )
        .await?;
        let api_key = convert::api_key(&stored);
        audit(
            &mut conn,
            &ctx,
            Some(principal.user_id),
            "api_key.created",
            "success",
            Some(&api_key.name),
            serde_json::json!({ "prefix": stored.prefix }),
        )
        .await;
        Ok(pb::CreateApiKeyResponse {
            api_key: Some(api_key),
            secret: generated.secret,
        })
    }

    async fn list_api_keys(
        &self,
        principal: Principal,
        req: pb::ListApiKeysRequest,
    ) -> AppResult<pb::ListApiKeysResponse> {
        let limit = pagination::page_size(req.page_size, pagination::DEFAULT_PAGE_SIZE)?;
        let after = pagination::decode(&req.page_token)?;
        let mut conn = self.state.db.get().await?;
        let mut keys =
            db::credentials::list_api_keys(&mut conn, principal.user_id, after, limit + 1).await?;
        let next_page_token = if keys.len() as i64 > limit {
            keys.truncate(limit as usize);
            keys.last()
                .map(|k| pagination::encode(k.created_at, k.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
            next_page_token,
        })
    }

    async fn revoke_api_key(
        &self,
        ctx: RequestContext,
        principal: Principal,
        req: pb::RevokeApiKeyRequest,
    ) -> AppResult<pb::ApiKey> {
        let id = req
            .name
            .strip_prefix(convert::API_KEY_COLLECTION)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| AppError::invalid("name", "must be api-keys/{id}"))?;
        let mut conn = self.state.db.get().await?;
        let key = db::credentials::revoke_api_key(&mut conn, principal.user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(req.name.clone()))?;
        self.state
            .cache
            .invalidate(&[(crate::layers::auth::KEY_CACHE, key.prefix.clone())])
            .await;
        audit(
            &mut conn,
            &ctx,
            Some(principal.user_id),
            "api_key.revoked",
            "success",
            Some(&req.name),
            serde_json::json!({ "prefix": key.prefix }),
        )
        .await;
        Ok(convert::api_key(&key))
    }
}

/// The failure counters of one Login attempt (see [`Auth::limit_login`]).
struct LoginFailures {
    /// Failures on this email from this client address.
    pair: String,
    /// Failures on this email from every address.
    email: String,
}

impl LoginFailures {
    fn of(ctx: &RequestContext, email: &Email) -> LoginFailures {
        let ip = ctx.client_ip_string().unwrap_or_else(|| "unknown".into());
        // The address first: it never contains '/', so no two (address,
        // email) pairs share a key.
        LoginFailures {
            pair: format!("login_failures:{ip}/{}", email.as_str()),
            email: format!("login_failures:email:{}", email.as_str()),
        }
    }

    /// Counts a failed login (wrong password, unknown email, disabled).
    async fn record(&self, state: &AppState) {
        let limits = state.config.rate_limits;
        state.limiter.hit(&self.pair, limits.login_per_email).await;
        state
            .limiter
            .hit(&self.email, limits.login_failures_per_email)
            .await;
    }
}

impl Auth {
    /// Login and Register attempts are limited per client address
    /// (`RATE_LIMIT_LOGIN_PER_IP`), to slow down credential stuffing.
    async fn limit_attempts(&self, ctx: &RequestContext) -> Result<(), Status> {
        let ip = ctx.client_ip_string().unwrap_or_else(|| "unknown".into());
        let limits = self.state.config.rate_limits;
        let by_ip = self
            .state
            .limiter
            .hit(&format!("login:ip:{ip}"), limits.login_per_ip)
            .await;
        if by_ip.allowed {
            return Ok(());
        }
        Err(self.refuse_login(ctx, by_ip).await)
    }

    /// Login is also limited per email, by *failures*, so that guessing one
    /// account's password is throttled without locking its owner out:
    ///
    /// - an address that failed `RATE_LIMIT_LOGIN_PER_EMAIL` times on the
    ///   email may not try it again until the window moves on;
    /// - once the email collected `RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL`
    ///   failures from all addresses together (a distributed guess), only
    ///   addresses without a failure on it may still try, and each new
    ///   failure costs such an address its turn.
    ///
    /// So an attacker's failures never refuse the owner's correct password
    /// from an address of their own; an attacker with many addresses gets
    /// the ceiling plus one guess per fresh address. A success does not
    /// reset the counters (an attacker could otherwise interleave its own
    /// account's logins).
    async fn limit_login(
        &self,
        ctx: &RequestContext,
        raw_email: &str,
    ) -> Result<Option<LoginFailures>, Status> {
        self.limit_attempts(ctx).await?;
        let Ok(email) = Email::parse(raw_email) else {
            return Ok(None); // INVALID_ARGUMENT follows, and costs no failure
        };
        let failures = LoginFailures::of(ctx, &email);
        let limits = self.state.config.rate_limits;
        let limiter = &self.state.limiter;
        let pair = limiter.peek(&failures.pair, limits.login_per_email).await;
        if !pair.allowed {
            return Err(self.refuse_login(ctx, pair).await);
        }
        let all = limiter
            .peek(&failures.email, limits.login_failures_per_email)
            .await;
        let address_failed = pair.remaining < pair.limit;
        if !all.allowed && address_failed {
            return Err(self.refuse_login(ctx, all).await);
        }
        Ok(Some(failures))
    }

    /// RESOURCE_EXHAUSTED for a refused Login or Register, audited.
    async fn refuse_login(&self, ctx: &RequestContext, decision: Decision) -> Status {
        crate::infra::observability::rate_limit_refused(
            crate::infra::observability::RefusedBy::Login,
            "login",
        );
        if let Ok(mut conn) = self.state.db.get().await {
            audit(
                &mut conn,
                ctx,
                None,
                "rate_limit.exceeded",
                "denied",
                Some("credentials"),
                serde_json::json!({ "bucket": "login", "limit": decision.limit }),
            )
            .await;
        }
        decision.status("login attempts")
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let ctx = RequestContext::of(&request);
        self.limit_attempts(&ctx).await?;
        respond(Auth::register(self, ctx, request.into_inner()).await)
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let ctx = RequestContext::of(&request);
        let failures = self.limit_login(&ctx, &request.get_ref().email).await?;
        respond(Auth::login(self, ctx, failures, request.into_inner()).await)
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let ctx = RequestContext::of(&request);
        respond(self.refresh(ctx, request.into_inner()).await)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let ctx = RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        respond(Auth::logout(self, ctx, principal, req).await)
    }

    async fn get_current_user(
        &self,
        request: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let (principal, _) = parts(request)?;
        let cache = &self.state.cache;
        if let Some(user) = cache.get::<pb::User>("profile", principal.user_id).await {
            return Ok(Response::new(user));
        }
        let user = convert::user(&self.current_user(&principal).await?);
        cache
            .put("profile", principal.user_id, &user, cache.ttls.profile)
            .await;
        Ok(Response::new(user))
    }

    async fn update_current_user(
        &self,
        request: Request<pb::UpdateCurrentUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let ctx = RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        respond(Auth::update_current_user(self, ctx, principal, req).await)
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let ctx = RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        respond(Auth::create_api_key(self, ctx, principal, req).await)
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(Auth::list_api_keys(self, principal, req).await)
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let ctx = RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        respond(Auth::revoke_api_key(self, ctx, principal, req).await)
    }
}
