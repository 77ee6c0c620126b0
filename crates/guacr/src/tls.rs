//! TLS for the guacd port (`-C` certificate, `-K` key), rustls with aws-lc-rs.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| anyhow::anyhow!("cannot read certificate {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key)
        .map_err(|e| anyhow::anyhow!("cannot read key {}: {e}", key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("invalid certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", cert.display());
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| anyhow::anyhow!("invalid key {}: {e}", key.display()))?
        .ok_or_else(|| anyhow::anyhow!("no private key found in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
