//! HTTPS in front of any fake: a TLS endpoint on loopback whose certificate
//! (for `127.0.0.1` and `localhost`) is signed by a private CA made at test
//! time, passing each connection's plain bytes on to the fake. The fake
//! itself is unchanged, so its counters still tell what reached it; the
//! front counts the handshakes that completed and those a client broke off
//! (a client that does not trust the CA).
//!
//! ```ignore
//! let fake = collaborator::Fake::start(TOKEN);
//! let front = tls::Front::start(&fake.url);      // front.url: https://127.0.0.1:PORT
//! std::fs::write("ca.pem", &front.ca_pem)?;       // what `ca_file` names
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key, as a server presents them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A private CA (self-signed) and a server certificate it signed: the
/// CA's certificate in PEM, and the server's identity.
fn private_ca_and_server() -> (String, Identity) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rostersync test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "rostersync test server");
    let server_certificate = server.signed_by(&server_key, &issuer).unwrap();
    let identity = Identity {
        chain: vec![server_certificate.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    };
    (ca_certificate.pem(), identity)
}

/// A running HTTPS front.
pub struct Front {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The private CA's certificate (PEM), for `ca_file`.
    pub ca_pem: String,
    handshakes: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Front {
    /// Serves HTTPS on a port of its own, each connection passed on to
    /// `upstream` (a fake's `http://` URL).
    pub fn start(upstream: &str) -> Front {
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not a fake's URL: {upstream}"));
        let (ca_pem, identity) = private_ca_and_server();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let handshakes = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = std::sync::mpsc::channel();
        let counters = (Arc::clone(&handshakes), Arc::clone(&refused));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let (handshakes, refused) = (Arc::clone(&counters.0), Arc::clone(&counters.1));
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        };
                        handshakes.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    });
                }
            });
        });
        let address = receiver.recv().unwrap();
        Front {
            url: format!("https://{address}"),
            ca_pem,
            handshakes,
            refused,
        }
    }

    /// Connections whose TLS handshake completed.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Connections whose handshake failed: the client did not trust us.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
