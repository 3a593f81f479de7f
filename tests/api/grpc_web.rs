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
