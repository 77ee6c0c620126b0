//! TLS settings shared by the drivers: the `ssl-mode` parameter (libpq's
//! names) and rustls client configurations (aws-lc-rs, like the rest of guacr).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

/// The `ssl-mode` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, certificate not verified (default).
    Prefer,
    /// TLS or fail; certificate not verified.
    Require,
    /// TLS, certificate chain verified against `ca-certificate` (or the system roots), any name.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl TlsMode {
    pub fn parse(s: Option<&str>) -> Result<TlsMode, String> {
        Ok(match s.map(str::trim) {
            None | Some("") | Some("prefer") => TlsMode::Prefer,
            Some("disable") => TlsMode::Disable,
            Some("require") => TlsMode::Require,
            Some("verify-ca") => TlsMode::VerifyCa,
            Some("verify-full") => TlsMode::VerifyFull,
            Some(other) => {
                return Err(format!(
                    "invalid ssl-mode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

/// The system's CA bundle (Debian path), used when no `ca-certificate` is given.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The PEM text of the trusted roots: the parameter, else the system bundle.
pub fn roots_pem(ca: Option<&str>) -> Result<Vec<u8>, String> {
    match ca {
        Some(pem) => Ok(pem.as_bytes().to_vec()),
        None => std::fs::read(SYSTEM_CA_BUNDLE)
            .map_err(|e| format!("no ca-certificate given and {SYSTEM_CA_BUNDLE} unreadable: {e}")),
    }
}

fn root_store(ca: Option<&str>) -> Result<RootCertStore, String> {
    let pem = roots_pem(ca)?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("invalid ca-certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("invalid ca-certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("ca-certificate holds no certificate".into());
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration for `mode` (`None` for `disable`).
pub fn client_config(mode: TlsMode, ca: Option<&str>) -> Result<Option<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cfg = match mode {
        TlsMode::Disable => return Ok(None),
        TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
        TlsMode::VerifyFull => builder
            .with_root_certificates(root_store(ca)?)
            .with_no_client_auth(),
        TlsMode::VerifyCa => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(ca)?),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
    };
    Ok(Some(cfg))
}

/// `prefer`/`require`: encrypt, but do not authenticate the server (libpq's semantics).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must verify; the name may differ.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_build() {
        assert_eq!(TlsMode::parse(None), Ok(TlsMode::Prefer));
        assert_eq!(TlsMode::parse(Some("verify-full")), Ok(TlsMode::VerifyFull));
        assert!(TlsMode::parse(Some("bogus")).is_err());
        assert!(client_config(TlsMode::Disable, None).unwrap().is_none());
        assert!(client_config(TlsMode::Require, None).unwrap().is_some());
        let e = client_config(TlsMode::VerifyFull, Some("not a pem")).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
