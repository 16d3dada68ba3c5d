//! `https://` upstreams: the gateway binary verifies the upstream's certificate (against
//! `--upstream-ca` or the system's roots), sends the right SNI and `Host`, and speaks HTTP/2
//! when the upstream's ALPN offers it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Gateway, Stytch, bounded, http};
use bytes::Bytes;

/// A throwaway CA and a certificate it signed for `localhost` and `127.0.0.1`; the CA's PEM
/// is written to a file for `--upstream-ca` (removed on drop).
pub(crate) struct TestPki {
    pub(crate) ca_file: PathBuf,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
    /// The leaf certificate and its key, PEM, for servers configured by file (redis-server).
    pub(crate) leaf_pem: String,
    pub(crate) leaf_key_pem: String,
}

impl TestPki {
    pub(crate) fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tower-stytch test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let ca_file = std::env::temp_dir().join(format!(
            "stytch-gateway-e2e-ca-{}-{}.pem",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        Self {
            ca_file,
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
        }
    }

    pub(crate) fn ca_path(&self) -> &str {
        self.ca_file.to_str().unwrap()
    }

    /// A TLS acceptor with the leaf certificate, offering the ALPN protocols `alpn`.
    pub(crate) fn acceptor(&self, alpn: &[&[u8]]) -> TlsAcceptor {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// What the TLS upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    host: Option<String>,
    sni: Option<String>,
    member_id: Option<String>,
}

/// An HTTPS upstream (ALPN `h2` and `http/1.1`, hyper's auto server) that records what it
/// saw.
struct TlsUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    handshakes_failed: Arc<Mutex<usize>>,
    _stop: oneshot::Sender<()>,
}

async fn tls_upstream(pki: &TestPki) -> TlsUpstream {
    let acceptor = pki.acceptor(&[b"h2", b"http/1.1"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(0));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let (s, f) = (seen.clone(), failed.clone());
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let (acceptor, s, f) = (acceptor.clone(), s.clone(), f.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    *f.lock().unwrap() += 1;
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    // HTTP/2 carries the authority in the URI, HTTP/1.1 in `Host`.
                    let host =
                        header("host").or_else(|| req.uri().authority().map(|a| a.to_string()));
                    s.lock().unwrap().push(Seen {
                        version: req.version(),
                        host,
                        sni: sni.clone(),
                        member_id: header("x-stytch-member-id"),
                    });
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"tls upstream\n"),
                        )))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsUpstream {
        addr,
        seen,
        handshakes_failed: failed,
        _stop: stop,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_signed_by_the_given_ca_is_reached_over_http2() {
    // If this broke, --upstream-ca (or its environment variable) would not be used, the
    // upstream would get a wrong Host or SNI, or HTTP/2 would not be negotiated over TLS.
    bounded(async {
        let pki = TestPki::new();
        let stytch = Stytch::start();
        let up = tls_upstream(&pki).await;
        let url = format!("https://localhost:{}", up.addr.port());
        let gw = Gateway::start_url(
            &stytch,
            &url,
            &[],
            &[("GATEWAY_UPSTREAM_CA", pki.ca_path())],
        )
        .await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "tls upstream\n");
        let seen = up.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].version, Version::HTTP_2, "ALPN did not pick h2");
        let authority = format!("localhost:{}", up.addr.port());
        assert_eq!(seen[0].host.as_deref(), Some(authority.as_str()));
        assert_eq!(seen[0].sni.as_deref(), Some("localhost"));
        assert_eq!(seen[0].member_id.as_deref(), Some(member.as_str()));
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_the_system_roots_do_not_trust_is_refused_502() {
    // If this broke, the gateway would hand identities to an upstream whose certificate it
    // never verified (a man in the middle between the gateway and the app).
    bounded(async {
        let pki = TestPki::new();
        let stytch = Stytch::start();
        let up = tls_upstream(&pki).await;
        let url = format!("https://localhost:{}", up.addr.port());
        let gw = Gateway::start_url(&stytch, &url, &[], &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert!(up.seen.lock().unwrap().is_empty(), "a request got through");
        assert!(*up.handshakes_failed.lock().unwrap() >= 1);
    })
    .await;
}
