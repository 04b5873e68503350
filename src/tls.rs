//! TLS and RSA for the client protocol over TCP, with the mysql client's options and
//! meanings: `ssl-mode` (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY),
//! `ssl-ca`, `ssl-capath`, `ssl-cert`, `ssl-key`, and for `caching_sha2_password` without
//! TLS the server's RSA key (`get-server-public-key`, `server-public-key-path`).
//!
//! rustls with the `ring` provider: pure Rust plus a little C, so the binaries stay
//! static. Certificates are read when a TLS connection is made, never on the socket.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disabled,
    #[default]
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    pub const NAMES: [&'static str; 5] = [
        "DISABLED",
        "PREFERRED",
        "REQUIRED",
        "VERIFY_CA",
        "VERIFY_IDENTITY",
    ];

    /// As the mysql client: any case.
    pub fn parse(v: &str) -> Option<SslMode> {
        Some(match v.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }

    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = *self as usize;
        f.write_str(Self::NAMES[i])
    }
}

/// How a TCP connection is secured. Never used on the unix socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    pub ca: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Ask the server for its RSA key when full authentication runs without TLS.
    pub get_server_public_key: bool,
    pub server_public_key_path: Option<PathBuf>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The client configuration for `opts`; `Err` is a setup problem (a file that cannot
/// be read or parsed), named.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let chain = if opts.mode.verifies() {
        let roots = roots(opts)?;
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?,
        )
    } else {
        // PREFERRED and REQUIRED encrypt without checking who answers, as the mysql
        // client does.
        None
    };
    let verifier = Arc::new(Verifier {
        provider,
        chain,
        identity: opts.mode == SslMode::VerifyIdentity,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("ssl-key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("ssl-cert/ssl-key: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry for VERIFY_IDENTITY: our hosts are IP
/// addresses (no DNS in a static binary), so an IP SAN.
pub fn server_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let list: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if list.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(list)
}

fn roots(opts: &TlsOptions) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let mut files: Vec<PathBuf> = opts.ca.iter().cloned().collect();
    if let Some(dir) = &opts.capath {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("ssl-capath {}: {e}", dir.display()))?;
        // Every PEM certificate in the directory (hashed names or not).
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() && certs(&p).is_ok() {
                files.push(p);
            }
        }
    }
    for f in files {
        for c in certs(&f).map_err(|e| format!("ssl-ca {e}"))? {
            store
                .add(c)
                .map_err(|e| format!("ssl-ca {}: {e}", f.display()))?;
        }
    }
    if store.is_empty() {
        return Err(
            "ssl-mode VERIFY_CA/VERIFY_IDENTITY: no CA certificate (ssl-ca, ssl-capath)".into(),
        );
    }
    Ok(store)
}

/// The server's certificate as `ssl-mode` says: PREFERRED and REQUIRED take any
/// (`chain` is `None`); VERIFY_CA wants a chain to one of our CAs, whatever the name;
/// VERIFY_IDENTITY the name (the IP address) too. The handshake signature is always
/// checked.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    identity: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.identity => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `caching_sha2_password` full authentication without TLS: the password (NUL
/// terminated) XORed with the scramble, encrypted with the server's RSA key (OAEP with
/// SHA-1, as MySQL 8.0.5 and later expect). `pem` is the key as the server sends it
/// or as `server-public-key-path` holds it (SubjectPublicKeyInfo or PKCS#1).
pub fn rsa_encrypt_password(pem: &str, password: &str, scramble: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| format!("the server's RSA public key does not parse: {e}"))?;
    if scramble.is_empty() {
        return Err("empty scramble".into());
    }
    let mut plain = password.as_bytes().to_vec();
    plain.push(0);
    for (i, b) in plain.iter_mut().enumerate() {
        *b ^= scramble[i % scramble.len()];
    }
    key.encrypt(
        &mut rsa::rand_core::OsRng,
        rsa::Oaep::new::<sha1::Sha1>(),
        &plain,
    )
    .map_err(|e| format!("RSA encryption of the password: {e}"))
}
