//! `demo --self-test`: each step sent through the gateway, its answer checked and printed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::steps::{DemoStep, StepCheck, cookie};
use crate::body::{Body, BoxError, full_body};
use crate::error::{GatewayError, chain};

/// Deadline of one self-test request.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the steps against the gateway at `gateway`; prints each status; true when all are
/// as expected.
pub(crate) async fn self_test(gateway: SocketAddr, steps: &[DemoStep]) -> bool {
    let base = format!("http://{gateway}");
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut all_ok = true;
    let mut stepped_up_jwt = None;
    for (i, step) in steps.iter().enumerate() {
        let token = match step.stepped_up_jwt {
            true => stepped_up_jwt.as_deref(),
            false => step.token.as_deref(),
        };
        let (ok, got) = match send(&client, &base, step, token).await {
            Ok((status, headers, body)) => {
                if step.check == StepCheck::SetsSteppedUpJwt {
                    stepped_up_jwt = cookie(&headers, "stytch_session_jwt");
                }
                let ok = step.passes(status) && step.check.passes(&headers, &body);
                (ok, status.as_u16().to_string())
            }
            Err(err) => (false, chain(&err)),
        };
        all_ok &= ok;
        println!(
            "self-test {}. {}: {} {} -> {got} (expected {}) {}",
            i + 1,
            step.title,
            step.method,
            step.path,
            step.expected_text(),
            if ok { "ok" } else { "FAILED" }
        );
    }
    println!("self-test {}", if all_ok { "passed" } else { "FAILED" });
    all_ok
}

/// Sends one step's request through the gateway, with `token` as its bearer token; returns
/// the status, headers and body.
async fn send(
    client: &Client<HttpConnector, Body>,
    base: &str,
    step: &DemoStep,
    token: Option<&str>,
) -> Result<(StatusCode, http::HeaderMap, Bytes), GatewayError> {
    let mut request = Request::builder()
        .method(step.method.clone())
        .uri(format!("{base}{}", step.path));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match &step.form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            full_body(form.clone())
        }
        None => full_body(Bytes::new()),
    };
    let request = request
        .body(body)
        .map_err(|e| GatewayError::DemoRequest(e.into()))?;
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>((parts.status, parts.headers, body))
    };
    match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(GatewayError::DemoRequest(err)),
        Err(_) => Err(GatewayError::DemoTimeout),
    }
}
