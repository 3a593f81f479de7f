//! grpc-web for browsers (tonic-web) and its CORS policy (CORS_ORIGINS).

use reqwest::StatusCode;

use crate::common::TestApp;

const ALLOWED: &str = "http://console.test"; // CORS_ORIGINS of TestApp
const EVIL: &str = "http://evil.test";

fn grpc_web_post(app: &TestApp, origin: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!(
            "http://{}/fileorganizer.v1.SystemService/GetHealth",
            app.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", origin)
        // One uncompressed frame holding an empty GetHealthRequest.
        .body(vec![0u8, 0, 0, 0, 0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_work_from_an_allowed_origin() {
    let app = TestApp::spawn().await;
    let response = grpc_web_post(&app, ALLOWED).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
    let body = response.bytes().await.unwrap();
    // A data frame (flag 0) then a trailer frame (flag 0x80) with grpc-status 0.
    assert_eq!(body[0], 0);
    let data_len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let trailer = &body[5 + data_len..];
    assert_eq!(trailer[0], 0x80);
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_only_configured_origins() {
    let app = TestApp::spawn().await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}/fileorganizer.v1.AuthService/Login", app.addr),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .send()
    };
    let allowed = preflight(ALLOWED).await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], ALLOWED);
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("x-grpc-web"));

    let refused = preflight(EVIL).await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // An actual call from the wrong origin gets no CORS grant either, so a
    // browser will not hand the response to the page.
    let response = grpc_web_post(&app, EVIL).send().await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_need_credentials_like_any_other() {
    let app = TestApp::spawn().await;
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/fileorganizer.v1.AuthService/GetCurrentUser",
            app.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("origin", ALLOWED)
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(response.headers()["access-control-allow-origin"], ALLOWED);
}

/// One grpc-web data frame holding `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend((bytes.len() as u32).to_be_bytes());
    framed.extend(bytes);
    framed
}

/// A grpc-web call of FileService's `method` with `body`, made as a
/// browser makes it over HTTP/1.1: the whole request is sent before the
/// answer is read (hyper's client would read an early answer while still
/// sending, which hides a connection reset a browser sees). Returns the
/// answer's status, from its headers (trailers only) or its trailer frame;
/// panics when the request cannot be sent whole or no whole answer arrives.
async fn grpc_web_call(app: &TestApp, method: &str, token: &str, body: Vec<u8>) -> tonic::Status {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /fileorganizer.v1.FileService/{method} HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\norigin: {ALLOWED}\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body)
        .await
        .expect("the whole request is sent (the server did not close on it)");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .await
        .expect("the whole answer arrives");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let mut lines = head.split("\r\n");
    assert!(lines.next().unwrap().contains(" 200 "), "{head}");
    let mut headers = reqwest::header::HeaderMap::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        let name = name.trim().to_ascii_lowercase();
        chunked |= name == "transfer-encoding" && value.contains("chunked");
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    let mut body = answer[split + 4..].to_vec();
    if chunked {
        let (mut plain, mut at) = (Vec::new(), 0);
        loop {
            let end = at + body[at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[at..end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&body[end + 2..end + 2 + size]);
            at = end + 2 + size + 2;
        }
        body = plain;
    }
    // The trailer frame (flag 0x80), if the status is not in the headers.
    let mut at = 0;
    while at + 5 <= body.len() {
        let len = u32::from_be_bytes(body[at + 1..at + 5].try_into().unwrap()) as usize;
        if body[at] & 0x80 != 0 {
            for line in String::from_utf8_lossy(&body[at + 5..at + 5 + len]).split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    headers.insert(
                        reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                        value.trim().parse().unwrap(),
                    );
                }
            }
        }
        at += 5 + len;
    }
    tonic::Status::from_header_map(&headers).expect("a grpc-status")
}

/// The RetryInfo delay of a refusal.
fn retry_delay(status: &tonic::Status) -> std::time::Duration {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .retry_info()
        .expect("the refusal keeps its RetryInfo")
        .retry_delay
        .expect("with a delay")
}

/// A large grpc-web (HTTP/1.1) upload refused before its body was read —
/// by the upload rate limit at once, or by the byte budget midway — still
/// gets its answer with the RetryInfo (the server reads the rest of the
/// body before answering, instead of closing a connection the browser is
/// still sending on), so the console can wait out the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_grpc_web_upload_refused_by_a_limit_keeps_its_retry_info() {
    use fileorganizer::pb::fileorganizer::v1 as pb;
    let app = TestApp::spawn_with(crate::common::Options {
        env: vec![
            ("RATE_LIMIT_UPLOAD", "2".into()),
            ("RATE_LIMIT_UPLOAD_BYTES", (3u64 << 20).to_string()),
        ],
        ..Default::default()
    })
    .await;
    let ann = crate::operations::user(&app, "grpc-web-limit").await;
    // An archive of 12 MiB in 1 MiB messages, one request body: the byte
    // budget refuses it after 3 MiB.
    let tar = crate::archives::tar_of(
        &(0..12)
            .map(|i| {
                (
                    format!("f{i}.bin"),
                    crate::files::content(1 << 20, i),
                    1_600_000_000,
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut body = frame(&pb::ImportArchiveRequest {
        path: "in".into(),
        ..Default::default()
    });
    for chunk in tar.chunks(1 << 20) {
        body.extend(frame(&pb::ImportArchiveRequest {
            body: Some(fileorganizer::pb::google::api::HttpBody {
                data: chunk.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
    let status = grpc_web_call(&app, "ImportArchive", &ann.token, body).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("upload bytes"), "{status:?}");
    assert!(retry_delay(&status).as_secs() >= 1);
    // The second upload of the window: 12 MiB in one message.
    let big = frame(&pb::UploadSmallFileRequest {
        path: "big.bin".into(),
        content: crate::files::content(12 << 20, 7),
        ..Default::default()
    });
    let second = grpc_web_call(&app, "UploadSmallFile", &ann.token, big.clone()).await;
    assert_eq!(second.code(), tonic::Code::ResourceExhausted);
    // The third is refused by the request limit before a byte is read.
    let status = grpc_web_call(&app, "UploadSmallFile", &ann.token, big).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("rate limit exceeded for upload:"),
        "{status:?}"
    );
    assert!(retry_delay(&status).as_secs() >= 1);
    assert!(!ann.root.join("big.bin").exists());
}
