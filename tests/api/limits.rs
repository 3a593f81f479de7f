//! Rate limits (Redis sliding windows, the per-address burst guard, login
//! limits) and the admin RPCs that inspect and reset them.

use diesel_async::RunQueryDsl;
use fileorganizer::pb::fileorganizer::v1::{self as pb, auth_service_client::AuthServiceClient};
use reqwest::StatusCode;
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

use crate::common::{Options, PASSWORD, TestApp, assert_code, bearer, envoy::Envoy, reason};

fn redis_env(limit: u32) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        (
            "REDIS_KEY_PREFIX",
            format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple()),
        ),
        ("RATE_LIMIT_API", limit.to_string()),
    ]
}

/// The RetryInfo delay of a refusal.
fn retry_delay(refused: &tonic::Status) -> std::time::Duration {
    refused
        .get_error_details()
        .retry_info()
        .expect("a refusal has a RetryInfo")
        .retry_delay
        .expect("with a delay")
}

async fn me(
    client: &mut AuthServiceClient<Channel>,
    token: &str,
) -> Result<tonic::Response<pb::User>, tonic::Status> {
    client
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, token))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_call_in_a_minute_is_refused_with_retry_info() {
    let app = TestApp::spawn_with(Options {
        env: redis_env(100),
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("limited")).await.access_token;
    let mut client = app.auth();
    for i in 0..100u32 {
        let sent = epoch_now();
        let response = me(&mut client, &token)
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e:?}"));
        let md = response.metadata();
        assert_eq!(md.get("x-ratelimit-limit").unwrap(), "100");
        assert_eq!(
            md.get("x-ratelimit-remaining").unwrap().to_str().unwrap(),
            (99 - i).to_string()
        );
        // Epoch seconds (the seed's definition), in the future and at most two windows away
        // (the sliding window's previous window counts until it has slid out).
        let reset = epoch_header(md, "x-ratelimit-reset");
        let answered = epoch_now();
        assert!(
            reset > sent && reset <= answered + 2 * 60,
            "reset {reset}, sent {sent}, answered {answered}"
        );
    }
    let sent = epoch_now();
    let refused = assert_code(me(&mut client, &token).await, Code::ResourceExhausted);
    let answered = epoch_now();
    assert_eq!(reason(&refused), "RATE_LIMITED");
    let delay = retry_delay(&refused);
    assert!(delay.as_secs() >= 1 && delay.as_secs() <= 60, "{delay:?}");
    let md = refused.metadata();
    assert_eq!(md.get("x-ratelimit-remaining").unwrap(), "0");
    assert_eq!(md.get("x-ratelimit-limit").unwrap(), "100");
    // retry-after is the delay; x-ratelimit-reset the moment, the same instant in epoch seconds.
    let retry_after = epoch_header(md, "retry-after");
    let reset = epoch_header(md, "x-ratelimit-reset");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(retry_after, delay.as_secs());
    assert!(
        reset >= sent + retry_after && reset <= answered + retry_after,
        "reset {reset}, retry-after {retry_after}, sent {sent}, answered {answered}"
    );
    // Another user has a budget of their own.
    let other = app.register(&TestApp::email("other")).await.access_token;
    me(&mut client, &other).await.unwrap();
    // The refusal was audited once.
    let mut conn = app.db().await;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'rate_limit.exceeded'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(n.n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_envoy_a_refusal_is_http_429_with_retry_after() {
    let app = TestApp::spawn_with(Options {
        env: redis_env(3),
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    let token = app
        .register(&TestApp::email("rest-limited"))
        .await
        .access_token;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let ok = http
            .get(envoy.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(ok.headers().contains_key("x-ratelimit-remaining"));
    }
    let sent = epoch_now();
    let refused = http
        .get(envoy.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let answered = epoch_now();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // As HTTP headers too: the delay in retry-after, the moment (epoch seconds) in the reset.
    let number = |name: &str| -> u64 { refused.headers()[name].to_str().unwrap().parse().unwrap() };
    let retry_after = number("retry-after");
    let reset = number("x-ratelimit-reset");
    assert!(retry_after >= 1);
    assert!(
        reset >= sent + retry_after && reset <= answered + retry_after,
        "reset {reset}, retry-after {retry_after}, sent {sent}, answered {answered}"
    );
    assert_eq!(refused.headers()["x-ratelimit-limit"], "3");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 8);
    assert!(
        body["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_enforce_one_limit_through_redis() {
    // Both processes configured alike, as replicas are: the test harness
    // raises the global limits of the in-process server, and a process with
    // a large limit leases part of it (ratelimit::Lease), which a process
    // configured with the default of 1,000 would see as spent.
    let mut env = redis_env(10);
    env.push(("RATE_LIMIT_GLOBAL_API", "1000000".into()));
    let app = TestApp::spawn_with(Options {
        env: env.clone(),
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("shared")).await.access_token;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut second = app
        .fileorg_command(&["serve"])
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "0")
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .spawn()
        .unwrap();
    let mut other = AuthServiceClient::new(crate::common::connect_when_up(port).await);
    let mut first = app.auth();
    for i in 0..10 {
        let client = if i % 2 == 0 { &mut first } else { &mut other };
        me(client, &token).await.unwrap();
    }
    assert_code(me(&mut first, &token).await, Code::ResourceExhausted);
    assert_code(me(&mut other, &token).await, Code::ResourceExhausted);
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_does_not_buy_a_new_burst_budget() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("RATE_LIMIT_BURST", "5".into()),
            ("RATE_LIMIT_BURST_PER_SECOND", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = http
            .get(envoy.url("/health"))
            .header("x-forwarded-for", format!("6.6.6.{i}"))
            .header("x-envoy-external-address", format!("7.7.7.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    // The server's own start-up health probes used part of the burst; had the
    // forged headers opened a new budget, every call would have passed.
    let passed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!((1..=5).contains(&passed), "{statuses:?}");
    let first_refusal = statuses
        .iter()
        .position(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert!(
        statuses[first_refusal..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// Login as seen from one client address.
fn login_from(app: &TestApp, ip: &str) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(app.channel_from(ip))
}

fn login_request(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

/// Issue 18, item 8: wrong passwords for a known email throttle the address
/// that sends them, not the account's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_throttle_the_guesser_not_the_owner() {
    const PER_ADDRESS: usize = 3;
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("RATE_LIMIT_LOGIN_PER_EMAIL", PER_ADDRESS.to_string()),
            ("RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL", "100".into()),
        ],
        ..Default::default()
    })
    .await;
    let email = TestApp::email("targeted");
    app.register(&email).await;
    let mut attacker = login_from(&app, "127.0.0.5");
    let mut codes = Vec::new();
    for i in 0..PER_ADDRESS + 7 {
        let wrong = format!("wrong password {i}");
        codes.push(match attacker.login(login_request(&email, &wrong)).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        });
    }
    let mut expected = vec![Code::Unauthenticated; PER_ADDRESS];
    expected.extend([Code::ResourceExhausted; 7]);
    assert_eq!(codes, expected);
    // The owner, from an address of their own, gets in.
    login_from(&app, "127.0.0.6")
        .login(login_request(&email, PASSWORD))
        .await
        .expect("the owner is not locked out by someone else's guesses");
    // The attacker is still throttled, even with the right password.
    let refused = assert_code(
        attacker.login(login_request(&email, PASSWORD)).await,
        Code::ResourceExhausted,
    );
    assert!(refused.metadata().get("retry-after").is_some());
    assert_eq!(reason(&refused), "RATE_LIMITED");
    // Its other emails are not affected by this one's throttle.
    let other = TestApp::email("unrelated");
    app.register(&other).await;
    attacker
        .login(login_request(&other, PASSWORD))
        .await
        .unwrap();
}

/// A guess spread over many addresses: past the per-email ceiling, only
/// addresses that have not failed on the email may try it, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_guessing_meets_a_per_email_ceiling_that_spares_clean_addresses() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("RATE_LIMIT_LOGIN_PER_EMAIL", "2".into()),
            ("RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL", "4".into()),
        ],
        ..Default::default()
    })
    .await;
    let email = TestApp::email("spread");
    app.register(&email).await;
    let wrong = login_request(&email, "not the password");
    // Two addresses, two failures each: the ceiling of 4 is reached.
    for ip in ["127.0.0.7", "127.0.0.8"] {
        for _ in 0..2 {
            assert_code(
                login_from(&app, ip).login(wrong.clone()).await,
                Code::Unauthenticated,
            );
        }
    }
    // A fresh address: one more guess is answered, then that address too is
    // refused (even with the right password).
    let mut fresh = login_from(&app, "127.0.0.9");
    assert_code(fresh.login(wrong.clone()).await, Code::Unauthenticated);
    assert_code(
        fresh.login(login_request(&email, PASSWORD)).await,
        Code::ResourceExhausted,
    );
    // The owner, from a clean address, still gets in.
    login_from(&app, "127.0.0.10")
        .login(login_request(&email, PASSWORD))
        .await
        .expect("a clean address with the right password passes the ceiling");
}

/// A user who used up their 8 calls of the window (Redis-backed), and an admin.
struct Limited {
    app: TestApp,
    user: pb::RegisterResponse,
    user_id: String,
    /// The admin's access token.
    admin: String,
}

async fn exhausted_user_and_an_admin() -> Limited {
    let app = TestApp::spawn_with(Options {
        env: redis_env(8),
        ..Default::default()
    })
    .await;
    let user = app.register(&TestApp::email("heavy")).await;
    let admin_email = TestApp::email("admin");
    app.register(&admin_email).await;
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &admin_email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();
    // The role is in the access token: log in again after the promotion.
    let admin = app
        .auth()
        .login(pb::LoginRequest {
            email: admin_email.clone(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let user_id = user.user.as_ref().unwrap().id.clone();
    let mut client = app.auth();
    for _ in 0..8 {
        me(&mut client, &user.access_token).await.unwrap();
    }
    assert_code(
        me(&mut client, &user.access_token).await,
        Code::ResourceExhausted,
    );
    Limited {
        app,
        user,
        user_id,
        admin,
    }
}

impl Limited {
    /// ResetRateLimit of the user's `buckets`, by whoever `token` is.
    async fn reset(
        &self,
        user_id: &str,
        buckets: &[&str],
        token: &str,
    ) -> Result<pb::ResetRateLimitResponse, tonic::Status> {
        let request = pb::ResetRateLimitRequest {
            user_id: user_id.into(),
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
        };
        self.app
            .system()
            .reset_rate_limit(bearer(request, token))
            .await
            .map(|r| r.into_inner())
    }

    async fn audit_events(
        &self,
        request: pb::ListAuditEventsRequest,
        token: &str,
    ) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
        self.app
            .system()
            .list_audit_events(bearer(request, token))
            .await
            .map(|r| r.into_inner())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_a_users_counters() {
    let l = exhausted_user_and_an_admin().await;
    let status = l
        .app
        .system()
        .get_rate_limit_status(bearer(
            pb::GetRateLimitStatusRequest {
                user_id: l.user_id.clone(),
            },
            &l.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.backend, "redis");
    let api = status.counters.iter().find(|c| c.bucket == "api").unwrap();
    assert_eq!((api.used, api.limit), (8, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_reset_a_users_limits_and_others_are_denied() {
    let l = exhausted_user_and_an_admin().await;
    // A regular user (one with budget left) may not reset anything.
    let bystander = l.app.register(&TestApp::email("bystander")).await;
    let denied = assert_code(
        l.reset(&l.user_id, &[], &bystander.access_token).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&denied), "PERMISSION_DENIED");
    let reset = l.reset(&l.user_id, &["api"], &l.admin).await.unwrap();
    let api = reset.counters.iter().find(|c| c.bucket == "api").unwrap();
    assert_eq!(api.used, 0);
    me(&mut l.app.auth(), &l.user.access_token)
        .await
        .expect("the user gets in again after the reset");

    let bad = assert_code(l.reset("nope", &[], &l.admin).await, Code::InvalidArgument);
    assert_eq!(crate::common::bad_field(&bad), "user_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_shows_admins_a_denial_and_a_reset_newest_first_and_paged() {
    let l = exhausted_user_and_an_admin().await;
    let bystander = l.app.register(&TestApp::email("bystander")).await;
    let bystander_id = bystander.user.as_ref().unwrap().id.clone();
    l.reset(&l.user_id, &[], &bystander.access_token)
        .await
        .unwrap_err();
    l.reset(&l.user_id, &["api"], &l.admin).await.unwrap();

    let first = pb::ListAuditEventsRequest {
        page_size: 1,
        ..Default::default()
    };
    let page = l.audit_events(first, &l.admin).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].action, "admin.rate_limit.reset");
    assert!(!page.next_page_token.is_empty());
    let authorization = pb::ListAuditEventsRequest {
        action_prefix: "authorization.".into(),
        ..Default::default()
    };
    let denials = l.audit_events(authorization, &l.admin).await.unwrap();
    assert_eq!(denials.events.len(), 1);
    assert_eq!(denials.events[0].user_id, bystander_id);
    assert_code(
        l.audit_events(Default::default(), &bystander.access_token)
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_limits_hold_per_process() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_API", "3".into())],
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("local")).await.access_token;
    let mut client = app.auth();
    for _ in 0..3 {
        me(&mut client, &token).await.unwrap();
    }
    assert_code(me(&mut client, &token).await, Code::ResourceExhausted);
}

/// The per-user and the global window are counted in one Redis script call
/// (`Limiter::hit_both`): the global one only counts calls the user's window
/// admitted, and refuses everyone once it is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_window_refuses_all_users_and_counts_only_admitted_calls() {
    for env in [
        redis_env(3),
        vec![("RATE_LIMIT_API", "3".to_string())], // per process, no Redis
    ] {
        let mut env = env;
        env.push(("RATE_LIMIT_GLOBAL_API", "5".into()));
        let redis = env.iter().any(|(k, _)| *k == "REDIS_URL");
        let app = TestApp::spawn_with(Options {
            env,
            ..Default::default()
        })
        .await;
        let alice = app.register(&TestApp::email("global-a")).await.access_token;
        let bob = app.register(&TestApp::email("global-b")).await.access_token;
        let mut client = app.auth();
        // Alice: 3 admitted, then refused by her own window (not counted globally).
        for _ in 0..3 {
            me(&mut client, &alice).await.unwrap();
        }
        for _ in 0..2 {
            let refused = assert_code(me(&mut client, &alice).await, Code::ResourceExhausted);
            assert!(
                !refused.message().contains("all users"),
                "{refused:?} (redis {redis})"
            );
        }
        // Bob: the global window has 2 left, then refuses him although his own has room.
        for _ in 0..2 {
            let ok = me(&mut client, &bob).await.unwrap();
            assert_eq!(ok.metadata().get("x-ratelimit-limit").unwrap(), "5");
        }
        let refused = assert_code(me(&mut client, &bob).await, Code::ResourceExhausted);
        assert!(
            refused.message().contains("all users"),
            "{refused:?} (redis {redis})"
        );
        assert_eq!(reason(&refused), "RATE_LIMITED");
    }
}

/// The shared window is a sliding-window counter: one small Redis hash per
/// limit whatever the traffic, and a refusal's retry delay is honest —
/// waiting that long is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_says_truly_how_long_to_wait_and_a_window_costs_one_small_hash() {
    let mut env = redis_env(3);
    env.push(("RATE_LIMIT_WINDOW_SECS", "1".into()));
    let prefix = env
        .iter()
        .find(|(k, _)| *k == "REDIS_KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .unwrap();
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let user = app.register(&TestApp::email("honest")).await;
    let mut client = app.auth();
    let mut user_id = String::new();
    for round in 0..2 {
        let mut admitted = 0;
        let refused = loop {
            match me(&mut client, &user.access_token).await {
                Ok(_) => admitted += 1,
                Err(status) => break status,
            }
            // At most the limit per fixed window, so at most twice the
            // limit however the calls straddle a window's end.
            assert!(admitted <= 6, "round {round}: {admitted} admitted");
        };
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        // (The call that proved the last wait enough took the freed slot.)
        assert!(round > 0 || admitted >= 1, "round {round}");
        let delay = retry_delay(&refused);
        assert!(
            delay >= std::time::Duration::from_secs(1)
                && delay <= std::time::Duration::from_secs(2),
            "{delay:?}"
        );
        tokio::time::sleep(delay).await;
        user_id = me(&mut client, &user.access_token)
            .await
            .unwrap_or_else(|e| panic!("round {round}: refused after waiting {delay:?}: {e:?}"))
            .into_inner()
            .id;
    }
    // The user's and the global window: a hash of three fields each.
    let client = bb8_redis::redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for key in [
        format!("{prefix}v2:rl:api:user:{user_id}"),
        format!("{prefix}v2:rl:api:global"),
    ] {
        let kind: String = bb8_redis::redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(kind, "hash", "{key}");
        let fields: Vec<String> = bb8_redis::redis::cmd("HKEYS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(fields.len(), 3, "{key}: {fields:?}");
    }
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn epoch_header(md: &tonic::metadata::MetadataMap, name: &str) -> u64 {
    md.get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
