//! Connecting to PostgreSQL: URL parsing and TLS, shared by the pool, the LISTEN connection and
//! the migration runner.

use std::str::FromStr;
use std::time::Duration;

use super::StoreError;

/// TLS for connections that ask for it (Supabase requires it); `sslmode=prefer`, the default,
/// falls back to plain TCP when the server offers no TLS (the embedded cluster).
pub fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        // ring supports the default versions; this cannot fail, but fall back to TLS 1.3 only.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 with ring")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        });
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Parses a PostgreSQL URL, giving the relay's connections a recognizable application_name.
pub fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("gre-relay");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}
