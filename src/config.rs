//! Settings: `config/default.toml` (compiled in, so the binary runs from any directory), then an
//! optional file, then the environment (`GRE_` prefix, `__` between levels), then the three pinned
//! names hosting platforms set: `PORT`, `DATABASE_URL`, `SUPABASE_JWT_SECRET`.
//!
//! This module only reads settings; it never touches the database or the network.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub chat: ChatSettings,
    pub websocket: WebSocketSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub shutdown_timeout_seconds: u64,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// Plain HTTP connections (not yet upgraded to a WebSocket) open at once.
    pub max_http_connections: usize,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept waiting for its next request.
    pub header_read_timeout_seconds: u64,
    /// Largest request head (request line and headers), in bytes; beyond: 431.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's body; beyond: 408.
    pub body_read_timeout_seconds: u64,
    /// Browser origins allowed to call the REST API and open WebSockets, comma-separated;
    /// `*` allows any (CONTRACT section 3).
    pub allowed_origins: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Empty means "use the embedded cluster".
    pub url: String,
    pub migrate_on_start: bool,
    pub pool_size: usize,
    pub pool_timeout_seconds: u64,
    pub embedded: EmbeddedSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddedSettings {
    pub dir: PathBuf,
    pub port: u16,
    /// Empty means "search for the binaries".
    pub bin_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatSettings {
    pub enabled_by_default: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebSocketSettings {
    pub auth_timeout_seconds: u64,
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    pub heartbeat_seconds: u64,
    pub write_timeout_seconds: u64,
    pub frames_per_second: f64,
    pub frames_burst: f64,
    /// WebSockets that may wait for their `authenticate` frame at once.
    pub max_unauthenticated: usize,
    /// WebSockets one player or staff member may hold on this relay.
    pub max_connections_per_identity: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// The compiled-in defaults alone, for tests and tools that set fields themselves.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load_from(None, std::iter::empty())
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not touch the real one.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("GRE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.clone().into_iter().collect())),
        );
        // The pinned names win over everything: they are what the hosting platform set.
        for (var, key) in [
            ("DATABASE_URL", "database.url"),
            ("SUPABASE_JWT_SECRET", "auth.jwt_secret"),
            ("PORT", "server.port"),
        ] {
            if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
                builder = builder.set_override(key, value.as_str())?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let ws = &self.websocket;
        if ws.outbound_queue == 0 {
            return Err(ConfigError::Invalid(
                "websocket.outbound_queue must be at least 1".into(),
            ));
        }
        if ws.max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "websocket.max_frame_bytes must be at least 1024".into(),
            ));
        }
        if ws.frames_per_second <= 0.0 || ws.frames_burst < 1.0 {
            return Err(ConfigError::Invalid(
                "websocket.frames_per_second must be positive and frames_burst at least 1".into(),
            ));
        }
        if ws.max_unauthenticated == 0 || ws.max_connections_per_identity == 0 {
            return Err(ConfigError::Invalid(
                "websocket.max_unauthenticated and max_connections_per_identity must be at least 1"
                    .into(),
            ));
        }
        let server = &self.server;
        if server.max_http_connections == 0 {
            return Err(ConfigError::Invalid(
                "server.max_http_connections must be at least 1".into(),
            ));
        }
        if server.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "server.max_header_bytes must be at least 8192".into(),
            ));
        }
        crate::cors::AllowedOrigins::parse(&server.allowed_origins)
            .map_err(|e| ConfigError::Invalid(format!("server.allowed_origins: {e}")))?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::Invalid(
                "database.pool_size must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn uses_embedded_database(&self) -> bool {
        self.database.url.trim().is_empty()
    }
}

impl ServerSettings {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds.max(1))
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_seconds.max(1))
    }
}

impl WebSocketSettings {
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_seconds.max(1))
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds.max(1))
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::defaults().expect("defaults");
        assert_eq!(s.server.port, 5000);
        assert!(s.chat.enabled_by_default);
        assert!(s.uses_embedded_database());
    }

    #[test]
    fn environment_overrides_with_prefix_and_pinned_names() {
        let s = Settings::load_from(
            None,
            env(&[
                ("GRE_CHAT__ENABLED_BY_DEFAULT", "false"),
                ("GRE_WEBSOCKET__MAX_FRAME_BYTES", "8192"),
                ("PORT", "6001"),
                ("DATABASE_URL", "postgres://u:p@db:5432/x"),
                ("SUPABASE_JWT_SECRET", "s3cret"),
            ]),
        )
        .expect("load");
        assert!(!s.chat.enabled_by_default);
        assert_eq!(s.websocket.max_frame_bytes, 8192);
        assert_eq!(s.server.port, 6001);
        assert_eq!(s.database.url, "postgres://u:p@db:5432/x");
        assert_eq!(s.auth.jwt_secret, "s3cret");
        assert!(!s.uses_embedded_database());
    }

    #[test]
    fn invalid_values_are_refused() {
        let err = Settings::load_from(None, env(&[("GRE_WEBSOCKET__OUTBOUND_QUEUE", "0")]));
        assert!(err.is_err());
        let err = Settings::load_from(None, env(&[("PORT", "not-a-port")]));
        assert!(err.is_err());
    }
}
