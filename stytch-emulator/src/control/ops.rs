//! Control operations on the server itself: injected faults, the request log, counts.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Out, str_field};
use crate::faults::{EmulatorEndpoint, Fault};
use crate::shared::Shared;
use crate::wire::{ApiError, one};

/// Parses a fault object of the control API.
pub(super) fn parse_fault(value: &Value) -> Result<Fault, ApiError> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("fault.type is required."))?;
    Ok(match kind {
        "latency" => Fault::Latency(Duration::from_millis(
            value.get("millis").and_then(Value::as_u64).unwrap_or(0),
        )),
        "status" => Fault::Status {
            status: value
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| ApiError::bad_request("fault.status must be an HTTP status."))?,
            retry_after: value.get("retry_after").and_then(Value::as_u64),
        },
        "close" | "connection_reset" => Fault::ConnectionReset,
        "rst" => Fault::Rst,
        "malformed_body" => Fault::MalformedBody,
        "truncated_body" => Fault::TruncatedBody,
        "hang" => Fault::Hang,
        "trickle" => Fault::Trickle {
            interval: Duration::from_millis(
                value
                    .get("interval_millis")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        ApiError::bad_request("fault.interval_millis is required for trickle.")
                    })?,
            ),
        },
        // Over HTTP a refusal needs an end: the control API shares the refused port.
        "refused" => Fault::Refused {
            duration: Some(Duration::from_millis(
                value.get("millis").and_then(Value::as_u64).ok_or_else(|| {
                    ApiError::bad_request("fault.millis is required for refused.")
                })?,
            )),
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown fault type {other}."
            )));
        }
    })
}

pub(super) fn list_requests(shared: &Shared) -> Map<String, Value> {
    let requests: Vec<Value> = shared
        .requests()
        .into_iter()
        .map(|r| {
            let headers: Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    )
                })
                .collect();
            json!({"method": r.method.as_str(), "path": r.path, "headers": headers, "body": r.body})
        })
        .collect();
    one("requests", requests.into())
}

pub(super) fn inject_fault(shared: &Shared, body: &Map<String, Value>) -> Out {
    let endpoint = str_field(body, "endpoint")?;
    let endpoint = EmulatorEndpoint::from_name(endpoint).ok_or_else(|| {
        ApiError::bad_request("endpoint must be authenticate, revoke, jwks, get_sessions, rbac_policy, rbac_organization, m2m_clients or m2m_token.")
    })?;
    let fault = parse_fault(body.get("fault").unwrap_or(&Value::Null))?;
    if let Some(percent) = body.get("percent") {
        let percent = percent
            .as_f64()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| ApiError::bad_request("percent must be a number from 0 to 100."))?;
        if matches!(fault, Fault::Refused { .. }) {
            return Err(ApiError::bad_request("refused cannot be given a percent."));
        }
        shared.faults.set_rate(endpoint, fault, percent);
        return Ok(Map::new());
    }
    let times = body.get("times").and_then(Value::as_u64).unwrap_or(1);
    shared.inject_fault(
        endpoint,
        fault,
        usize::try_from(times).unwrap_or(usize::MAX),
    );
    Ok(Map::new())
}

/// Calls per endpoint, and under `injected` the faults each showed.
pub(super) fn counts(shared: &Shared) -> Map<String, Value> {
    let mut out: Map<String, Value> = shared
        .faults
        .counts()
        .into_iter()
        .map(|(endpoint, count)| (endpoint.name().to_owned(), count.into()))
        .collect();
    let injected: Map<String, Value> = shared
        .faults
        .counts()
        .into_iter()
        .map(|(endpoint, _)| {
            let n = shared.faults.injected(endpoint);
            (endpoint.name().to_owned(), n.into())
        })
        .collect();
    out.insert("injected".into(), injected.into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault_kind() {
        // If this broke, the HTTP control API could not inject faults.
        assert_eq!(
            parse_fault(&json!({"type": "status", "status": 429, "retry_after": 3})).unwrap(),
            Fault::Status {
                status: 429,
                retry_after: Some(3)
            }
        );
        assert_eq!(
            parse_fault(&json!({"type": "latency", "millis": 5})).unwrap(),
            Fault::Latency(Duration::from_millis(5))
        );
        assert_eq!(
            parse_fault(&json!({"type": "connection_reset"})).unwrap(),
            Fault::ConnectionReset
        );
        assert_eq!(
            parse_fault(&json!({"type": "close"})).unwrap(),
            Fault::ConnectionReset
        );
        assert_eq!(parse_fault(&json!({"type": "rst"})).unwrap(), Fault::Rst);
        assert_eq!(parse_fault(&json!({"type": "hang"})).unwrap(), Fault::Hang);
        assert_eq!(
            parse_fault(&json!({"type": "trickle", "interval_millis": 7})).unwrap(),
            Fault::Trickle {
                interval: Duration::from_millis(7)
            }
        );
        assert_eq!(
            parse_fault(&json!({"type": "refused", "millis": 300})).unwrap(),
            Fault::Refused {
                duration: Some(Duration::from_millis(300))
            }
        );
        assert!(
            parse_fault(&json!({"type": "refused"})).is_err(),
            "over HTTP a refusal must end by itself"
        );
        assert!(parse_fault(&json!({"type": "trickle"})).is_err());
        assert!(parse_fault(&json!({"type": "status", "status": 1000})).is_err());
        assert!(parse_fault(&json!({"type": "nope"})).is_err());
    }
}
