//! The revocation bus the flags name: `--redis-url`, or the Sentinel flags made into a
//! `redis+sentinel://` URL.

use tower_stytch::bus::RedisBus;

use super::args::ServeArgs;
use crate::error::GatewayError;

/// The revocation bus of `--redis-url`, or of `--redis-sentinel` (a `redis+sentinel://` URL
/// made of the Sentinel flags); `None` without either.
pub(super) fn redis_bus(args: &ServeArgs) -> Result<Option<RedisBus>, GatewayError> {
    let url = if args.redis_sentinels.is_empty() {
        match &args.redis_url {
            Some(url) if !url.0.trim().is_empty() => url.0.clone(),
            _ => return Ok(None),
        }
    } else {
        let scheme = if args.redis_tls {
            "redis+sentinels"
        } else {
            "redis+sentinel"
        };
        let userinfo = args
            .redis_password
            .as_ref()
            .map(|p| format!(":{}@", percent_encode(&p.0)))
            .unwrap_or_default();
        let master = percent_encode(args.redis_sentinel_master.as_deref().unwrap_or_default());
        let hosts = args.redis_sentinels.join(",");
        format!("{scheme}://{userinfo}{hosts}/{master}")
    };
    let mut builder = RedisBus::builder(&url)
        .lease(args.redis_lease)
        .startup_wait(args.redis_startup_wait);
    if let Some(password) = &args.redis_sentinel_password {
        builder = builder.sentinel_password(&password.0);
    }
    Ok(Some(builder.build()?))
}

/// `raw` with every byte but the URL's unreserved ones percent-encoded.
pub(super) fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
