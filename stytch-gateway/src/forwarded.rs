//! Forwarding headers (`X-Forwarded-For` / `-Proto` / `-Host`, `Forwarded`, `X-Real-IP`):
//! trusted from configured proxies only, the Traefik model.
//!
//! From a peer inside a `--trusted-proxy` network, the client's address chain is kept and
//! the peer appended to `X-Forwarded-For`, and its `X-Forwarded-Proto` (a TLS terminator's
//! `https`), `X-Forwarded-Host`, `Forwarded` and `X-Real-IP` are kept; the gateway fills in
//! only what it left out. From any other peer, every forwarding header the client sent is
//! dropped and the gateway sets its own: `X-Forwarded-For` and `X-Real-IP` the peer's
//! address, `X-Forwarded-Proto: http` (the gateway listens on plain http), `X-Forwarded-Host`
//! the request's host. `Forwarded` is never written by the gateway.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The forwarding headers a client may send, all dropped unless the peer is trusted.
pub(crate) static CLIENT_FORWARDING: [HeaderName; 7] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    http::header::FORWARDED,
    X_REAL_IP,
];

/// The networks of the proxies in front of the gateway (`--trusted-proxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts `networks` (none: no peer is trusted).
    pub(crate) fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `peer` is inside a trusted network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub(crate) fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// Parses one `--trusted-proxy` value: a network (`10.0.0.0/8`, `fd00::/8`) or a single
/// address (`10.0.0.1`), surrounding blanks ignored.
///
/// # Errors
///
/// What is wrong with it, for clap to print.
pub(crate) fn parse_trusted_proxy(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| "expected a network like 10.0.0.0/8 or an address like 10.0.0.1".to_owned())
}

/// Sets the forwarding headers of a request from `peer` (see the [module docs](self));
/// `host` is the request's own `Host` (or `:authority`).
pub(crate) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
    host: Option<HeaderValue>,
) {
    let peer = peer.map(|ip| ip.to_canonical());
    if !peer.is_some_and(|ip| trusted.contains(ip))
        && headers.keys().any(|name| CLIENT_FORWARDING.contains(name))
    {
        for name in &CLIENT_FORWARDING {
            headers.remove(name);
        }
    }
    if let Some(ip) = peer {
        let ip = ip_value(ip);
        append_forwarded_for(headers, &ip);
        if !headers.contains_key(&X_REAL_IP) {
            headers.insert(X_REAL_IP, ip);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = host
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// Appends `ip` to the request's `X-Forwarded-For` chain (all copies merged into one).
/// Without a chain (every untrusted peer's request), `ip` is the header, copied from no string.
fn append_forwarded_for(headers: &mut HeaderMap, ip: &HeaderValue) {
    let mut chain = String::new();
    let copies = headers.get_all(&X_FORWARDED_FOR).iter();
    for hop in copies.filter_map(|v| v.to_str().ok()).map(str::trim) {
        if !hop.is_empty() {
            chain.push_str(hop);
            chain.push_str(", ");
        }
    }
    let value = if chain.is_empty() {
        ip.clone()
    } else {
        // `ip` is an address, so ASCII.
        chain.push_str(ip.to_str().unwrap_or_default());
        HeaderValue::from_str(&chain).unwrap_or_else(|_| ip.clone())
    };
    headers.insert(X_FORWARDED_FOR, value);
}

/// The header value of an address: one allocation, shared by every header that holds it,
/// and by the thread's next requests from the same address (a connection's, a balancer's).
fn ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((cached, value)) if *cached == ip => value.clone(),
            _ => {
                let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
                    .expect("an IP address is a valid header value");
                *last = Some((ip, value.clone()));
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forged() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        h.insert("x-forwarded-port", HeaderValue::from_static("443"));
        h.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
        h.insert(X_REAL_IP, HeaderValue::from_static("6.6.6.6"));
        h
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec![
            parse_trusted_proxy("192.168.0.0/16").unwrap(),
            parse_trusted_proxy(" 127.0.0.1 ").unwrap(),
        ])
    }

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_replaced() {
        // If this broke, any client could choose the address, scheme and host the upstream
        // believes in (rate limits, audit logs, allowlists, redirects).
        let mut h = forged();
        let host = Some(HeaderValue::from_static("app.example:8443"));
        set_forwarding_headers(&mut h, Some("10.9.9.9".parse().unwrap()), &trusted(), host);
        assert_eq!(h[X_FORWARDED_FOR], "10.9.9.9");
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "app.example:8443");
        assert_eq!(h[X_REAL_IP], "10.9.9.9");
        assert!(!h.contains_key("forwarded"));
        assert!(!h.contains_key("x-forwarded-port"));
        // No peer known: nothing the client said survives either.
        let mut h = forged();
        set_forwarding_headers(&mut h, None, &trusted(), None);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn a_trusted_peers_forwarding_headers_are_kept_and_appended_to() {
        // If this broke, behind a load balancer the upstream would see the balancer as the
        // client, and TLS-terminated requests as plain http.
        let mut h = forged();
        let host = Some(HeaderValue::from_static("internal:8080"));
        set_forwarding_headers(
            &mut h,
            Some("192.168.1.5".parse().unwrap()),
            &trusted(),
            host,
        );
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 192.168.1.5");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h[X_FORWARDED_HOST], "evil.example");
        assert_eq!(h[X_REAL_IP], "6.6.6.6");
        assert_eq!(h["forwarded"], "for=6.6.6.6");
        // What the trusted proxy left out, the gateway fills in.
        let mut h = HeaderMap::new();
        let host = Some(HeaderValue::from_static("internal:8080"));
        set_forwarding_headers(
            &mut h,
            Some("::ffff:127.0.0.1".parse().unwrap()),
            &trusted(),
            host,
        );
        assert_eq!(h[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "internal:8080");
        assert_eq!(h[X_REAL_IP], "127.0.0.1");
    }

    #[test]
    fn trusted_proxy_values_are_networks_or_addresses() {
        // If this broke, a typo in --trusted-proxy would trust nobody (or everybody) silently.
        assert_eq!(
            parse_trusted_proxy("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_trusted_proxy("::1").unwrap().to_string(), "::1/128");
        for bad in ["", "10.0.0.0/33", "not-a-network", "10.0.0", "0.0.0.0/8/1"] {
            assert!(parse_trusted_proxy(bad).is_err(), "{bad}");
        }
        let t = trusted();
        assert!(t.contains("192.168.200.1".parse().unwrap()));
        assert!(!t.contains("192.169.0.1".parse().unwrap()));
        assert!(!TrustedProxies::default().contains("127.0.0.1".parse().unwrap()));
    }
}
