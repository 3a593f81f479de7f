//! Long-lived resources (issue 18 item 10): WatchOperation streams share one Redis
//! subscription per process (fed by a job in another process, and coming back after Redis
//! restarts; the private Redis of each test counts the connections exactly), a user's
//! concurrent server streams are capped (MAX_STREAMS_PER_USER), and connections to the gRPC
//! port with no call in flight are closed after IDLE_CONNECTION_TIMEOUT_SECS.

use std::time::Duration;

use bb8_redis::redis;
use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use tonic::{Code, Status, Streaming};

use crate::{
    common::{Options, TestApp, assert_code, bearer, free_port, reason, tree},
    files::files,
    operations::{User, create, organize, user},
    outages::start_redis,
    recovery::spawn_worker,
};

/// Only keeps a broken test from hanging the suite.
const DEADLINE: Duration = Duration::from_secs(120);

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The lines of CLIENT LIST for connections in pub/sub mode (subscribed to a channel or a
/// pattern), and the number of all clients.
async fn clients(conn: &mut redis::aio::MultiplexedConnection) -> (Vec<String>, usize) {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    let field = |line: &str, name: &str| -> u64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let pubsub = list
        .lines()
        .filter(|line| field(line, "sub") + field(line, "psub") > 0)
        .map(String::from)
        .collect();
    (pubsub, list.lines().count())
}

/// Subscribers of one channel (PUBSUB NUMSUB).
async fn subscribers(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let reply: (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .unwrap();
    reply.1
}

/// Polls until `channel` has `want` subscribers (bounded by `within`).
async fn wait_for_subscribers(
    conn: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    want: i64,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = subscribers(conn, channel).await;
        if n == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{channel} has {n} subscribers, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn watch(app: &TestApp, user: &User, name: &str) -> Streaming<pb::WatchOperationResponse> {
    let mut stream = app
        .operations()
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: name.into(),
                ..Default::default()
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner();
    // The first snapshot: the stream's task runs (and has asked for the subscription).
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.state, OperationState::Queued as i32);
    stream
}

/// Reads a stream to its end: (snapshots published live by a job, the last state).
async fn follow(mut stream: Streaming<pb::WatchOperationResponse>) -> (usize, i32) {
    let mut live = 0;
    let mut last = 0;
    while let Some(s) = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("the stream hung")
        .unwrap()
    {
        // Only live snapshots (from the worker process, over Redis) carry the current path;
        // the stream's database polls do not.
        if !s.current_path.is_empty() && s.state == OperationState::Applying as i32 {
            live += 1;
        }
        last = s.state;
    }
    (live, last)
}

fn write_files(user: &User, folder: &str, n: usize) {
    for i in 0..n {
        tree::write(
            &user.root,
            &format!("{folder}/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
}

fn redis_env(url: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", url.into()),
        ("REDIS_KEY_PREFIX", prefix.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_watch_streams_share_one_redis_subscription_fed_by_another_process() {
    const STREAMS: usize = 50;
    let port = free_port();
    let _redis = start_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = "fileorg-streams:";
    let mut env = redis_env(&url, prefix);
    env.push(("WORKERS", "0".into()));
    env.push(("MAX_STREAMS_PER_USER", "64".into()));
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let june = user(&app, "shared-sub").await;
    write_files(&june, "r", 600);
    let op = create(&app, &june, organize("r")).await;
    let id = op.name.trim_start_matches("operations/");
    let channel = format!("{prefix}v2:progress:{id}");
    let mut redis = redis_connection(&url).await;
    let (pubsub_before, clients_before) = clients(&mut redis).await;
    assert_eq!(pubsub_before, Vec::<String>::new());

    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(watch(&app, &june, &op.name).await);
    }
    wait_for_subscribers(&mut redis, &channel, 1, Duration::from_secs(10)).await;
    let (pubsub, clients_during) = clients(&mut redis).await;
    println!(
        "{STREAMS} streams: {} pub/sub connection(s); all clients {clients_before} -> \
         {clients_during} (the API's pool included)",
        pubsub.len()
    );
    assert_eq!(pubsub.len(), 1, "{pubsub:#?}");
    assert!(pubsub[0].contains(" sub=1 "), "{pubsub:?}");

    // The job runs in another process, which publishes on Redis only.
    let mut worker_env = redis_env(&url, prefix);
    worker_env.push(("MOVES_PER_SECOND", "200".into()));
    let mut worker = spawn_worker(&app, &worker_env);
    let followed = futures::future::join_all(streams.into_iter().map(follow)).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    let live: Vec<usize> = followed.iter().map(|(live, _)| *live).collect();
    println!("live snapshots per stream: {live:?}");
    for (live, last) in &followed {
        assert_eq!(*last, OperationState::Succeeded as i32);
        assert!(
            *live >= 3,
            "a stream saw {live} live snapshots: {followed:?}"
        );
    }
    // The last watcher gone, the channel is given up; the one connection stays for later.
    wait_for_subscribers(&mut redis, &channel, 0, Duration::from_secs(10)).await;
    let (pubsub_after, _) = clients(&mut redis).await;
    assert!(pubsub_after.len() <= 1, "{pubsub_after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_subscription_comes_back_after_redis_restarts() {
    let port = free_port();
    let mut redis_server = start_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = "fileorg-restart:";
    let mut env = redis_env(&url, prefix);
    env.push(("WORKERS", "0".into()));
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let kim = user(&app, "resubscribe").await;
    write_files(&kim, "r", 600);
    let op = create(&app, &kim, organize("r")).await;
    let channel = format!(
        "{prefix}v2:progress:{}",
        op.name.trim_start_matches("operations/")
    );
    let stream = watch(&app, &kim, &op.name).await;
    let mut redis = redis_connection(&url).await;
    wait_for_subscribers(&mut redis, &channel, 1, Duration::from_secs(10)).await;

    redis_server.kill(); // SIGKILL: the subscription dies without a goodbye
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _redis_server = start_redis(port);
    let mut redis = redis_connection(&url).await;
    // The backoff is at most 30 s; the stream was open all along.
    wait_for_subscribers(&mut redis, &channel, 1, Duration::from_secs(60)).await;

    let mut worker_env = redis_env(&url, prefix);
    worker_env.push(("MOVES_PER_SECOND", "200".into()));
    let mut worker = spawn_worker(&app, &worker_env);
    let (live, last) = follow(stream).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(last, OperationState::Succeeded as i32);
    assert!(live >= 3, "{live} live snapshots after the restart");
}

/// Opens a WatchOperation stream; the refusal, if any.
async fn try_watch(
    app: &TestApp,
    user: &User,
    name: &str,
) -> Result<Streaming<pb::WatchOperationResponse>, Status> {
    app.operations()
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: name.into(),
                ..Default::default()
            },
            &user.token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The refusal of a stream beyond the cap: RESOURCE_EXHAUSTED, RATE_LIMITED, a RetryInfo and
/// a message that says what to do.
fn assert_stream_cap(status: &Status) {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status), "RATE_LIMITED");
    assert!(
        status.get_error_details().retry_info().is_some(),
        "{status:?}"
    );
    assert!(
        status.message().contains("MAX_STREAMS_PER_USER"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_user_are_capped_across_kinds_and_freed_when_one_ends() {
    const CAP: usize = 3;
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("WORKERS", "0".into()),
            ("MAX_STREAMS_PER_USER", CAP.to_string()),
        ],
        ..Default::default()
    })
    .await;
    let ann = user(&app, "cap").await;
    let bob = user(&app, "cap-other").await;
    tree::write(&ann.root, "q/a.txt", b"ann's file");
    tree::write(&bob.root, "q/b.txt", b"bob's file");
    // Without workers the operation stays queued, so its streams stay open.
    let op = create(&app, &ann, organize("q")).await;
    let bobs = create(&app, &bob, organize("q")).await;
    let mut open = Vec::new();
    for _ in 0..CAP {
        open.push(watch(&app, &ann, &op.name).await);
    }

    // One more of any kind of server stream is refused.
    let refused = try_watch(&app, &ann, &op.name).await.err();
    assert_stream_cap(&refused.expect("a stream beyond the cap was admitted"));
    let download = files(&app)
        .download_file(bearer(
            pb::DownloadFileRequest {
                path: "q/a.txt".into(),
            },
            &ann.token,
        ))
        .await;
    assert_stream_cap(&assert_code(download.map(|_| ()), Code::ResourceExhausted));
    let mut reports = pb::report_service_client::ReportServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    );
    let export = reports
        .export_report(bearer(
            pb::ExportReportRequest {
                name: op.name.replace("operations/", "reports/"),
                format: pb::ReportFormat::Csv as i32,
            },
            &ann.token,
        ))
        .await;
    assert_stream_cap(&assert_code(export.map(|_| ()), Code::ResourceExhausted));

    // Another user is not affected.
    let mut bobs_stream = watch(&app, &bob, &bobs.name).await;
    let mut bobs_download = files(&app)
        .download_file(bearer(
            pb::DownloadFileRequest {
                path: "q/b.txt".into(),
            },
            &bob.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = bobs_download.message().await.unwrap() {
        bytes.extend(chunk.data);
    }
    assert_eq!(bytes, b"bob's file");
    assert!(bobs_stream.message().await.unwrap().is_some());

    // A client that goes away frees its slot (bounded wait: the server notices the reset).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let replacement = loop {
        match try_watch(&app, &ann, &op.name).await {
            Ok(stream) => break stream,
            Err(status) => {
                assert_stream_cap(&status);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot of a dropped stream was not freed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    open.push(replacement);
    assert_stream_cap(&try_watch(&app, &ann, &op.name).await.err().unwrap());

    // A stream that ends by itself frees its slot too: a download read to its end.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut download = loop {
        match files(&app)
            .download_file(bearer(
                pb::DownloadFileRequest {
                    path: "q/a.txt".into(),
                },
                &ann.token,
            ))
            .await
        {
            Ok(stream) => break stream.into_inner(),
            Err(status) => {
                assert_stream_cap(&status);
                assert!(tokio::time::Instant::now() < deadline, "no slot came free");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    while download.message().await.unwrap().is_some() {}
    drop(download);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match try_watch(&app, &ann, &op.name).await {
            Ok(stream) => {
                open.push(stream);
                break;
            }
            Err(status) => {
                assert_stream_cap(&status);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a finished download kept its slot"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(open.len(), CAP);
    assert_stream_cap(&try_watch(&app, &ann, &op.name).await.err().unwrap());
}

/// Reads `socket` until the server closes it (EOF or reset), at most `within`: the bytes read
/// and when it closed, or None if it was still open.
async fn read_until_closed(
    socket: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<(Vec<u8>, tokio::time::Instant)> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((received, tokio::time::Instant::now())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_grpc_port_are_closed_and_busy_ones_are_not() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("WORKERS", "0".into()),
            ("IDLE_CONNECTION_TIMEOUT_SECS", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    // Generous: only a connection that is never closed fails (the timeout is 1 s).
    let within = Duration::from_secs(15);

    // A TCP connection that never says anything.
    let opened = tokio::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, within)
        .await
        .expect("a silent connection was still open after 15 s");
    let lived = closed - opened;
    println!("silent connection closed after {lived:?}");
    assert!(
        lived >= Duration::from_millis(900),
        "closed early: {lived:?}"
    );

    // An HTTP/2 connection that opens (preface and SETTINGS) and then makes no call.
    let mut h2 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let (frames, _) = read_until_closed(&mut h2, within)
        .await
        .expect("an idle HTTP/2 connection was still open after 15 s");
    // The server's SETTINGS frame (type 4) came first: it spoke HTTP/2 before closing.
    assert!(frames.len() >= 9 && frames[3] == 4, "{frames:?}");

    // A stream open for longer than the timeout keeps its connection, and is served.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ann = user(&app, "idle").await;
    tree::write(&ann.root, "q/a.txt", b"a");
    let op = create(&app, &ann, organize("q")).await;
    let mut stream = pb::operation_service_client::OperationServiceClient::new(channel.clone())
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: op.name.clone(),
                ..Default::default()
            },
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let started = tokio::time::Instant::now();
    let mut late = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let snapshot = tokio::time::timeout(within, stream.message())
            .await
            .expect("the stream stalled")
            .expect("the stream's connection was closed under it")
            .expect("the stream ended");
        assert_eq!(snapshot.state, OperationState::Queued as i32);
        if started.elapsed() > Duration::from_secs(2) {
            late += 1;
        }
    }
    assert!(late > 0, "no snapshot arrived after the idle timeout");
    drop(stream);
    // The channel reconnects by itself after the server closed the idle connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pb::operation_service_client::OperationServiceClient::new(channel)
        .get_operation(bearer(
            pb::GetOperationRequest { name: op.name },
            &ann.token,
        ))
        .await
        .unwrap();
}
