//! Settings: `config/default.toml` (compiled in, so the binary runs from any directory), then an
//! optional file, then the environment (`GRE_` prefix, `__` between levels), then the pinned names
//! hosting platforms and Supabase set: `PORT`, `DATABASE_URL`, `SUPABASE_JWT_SECRET`,
//! `SUPABASE_URL`, `SUPABASE_SECRET_KEYS`.
//!
//! Secrets (the JWT secret, secret API keys, the database password) never show in `Debug`.
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
    /// Images and files in the chat: where they are stored and the upload limits.
    pub storage: StorageSettings,
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
    /// Threads of the async runtime; 0 = one per core (docs/performance.md, "Issue 12, idle
    /// memory and relay CPU").
    pub worker_threads: usize,
}

#[derive(Clone, Deserialize)]
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

#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// The legacy HS256 secret (`SUPABASE_JWT_SECRET`); empty = HS256 tokens are refused.
    pub jwt_secret: String,
    /// The project URL (`SUPABASE_URL`); empty = no signing keys.
    pub supabase_url: String,
    /// Secret API keys (`SUPABASE_SECRET_KEYS`), comma-separated; see [`AuthSettings::secret_keys`].
    pub secret_keys: String,
    pub leeway_seconds: u64,
    /// The longest the signing keys are cached before they are fetched again (at most 600).
    pub jwks_refresh_seconds: u64,
    /// The shortest time between two fetches caused by tokens with an unknown `kid`.
    pub jwks_min_refetch_seconds: u64,
    /// How long one fetch of the key set may take.
    pub jwks_timeout_seconds: u64,
}

impl AuthSettings {
    /// The project URL without a trailing slash, or None when signing keys are off.
    pub fn supabase_base_url(&self) -> Option<String> {
        let url = self.supabase_url.trim().trim_end_matches('/');
        (!url.is_empty()).then(|| url.to_owned())
    }

    /// The secret API keys, trimmed, empty entries dropped.
    pub fn secret_keys(&self) -> Vec<String> {
        self.secret_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Shows whether a secret is set, never the secret.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        "(empty)"
    } else {
        "(redacted)"
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("supabase_url", &self.supabase_url)
            .field(
                "secret_keys",
                &format_args!("({} redacted)", self.secret_keys().len()),
            )
            .field("leeway_seconds", &self.leeway_seconds)
            .field("jwks_refresh_seconds", &self.jwks_refresh_seconds)
            .field("jwks_min_refetch_seconds", &self.jwks_min_refetch_seconds)
            .field("jwks_timeout_seconds", &self.jwks_timeout_seconds)
            .finish()
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url_password(&self.url))
            .field("migrate_on_start", &self.migrate_on_start)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout_seconds", &self.pool_timeout_seconds)
            .field("embedded", &self.embedded)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:(redacted)@host/db`; also hides a
/// `password=` parameter of a URL's query or a key/value connection string.
pub fn redact_url_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "(redacted)");
            }
        }
    }
    if let Some(start) = out.find("password=") {
        let value = start + "password=".len();
        let end = out[value..]
            .find(['&', ' '])
            .map_or(out.len(), |i| value + i);
        out.replace_range(value..end, "(redacted)");
    }
    out
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
    /// Microseconds a connection waits, once it has written what was queued, for more events
    /// before it flushes; 0 = flush at once.
    pub write_linger_micros: u64,
}

/// `[storage]`: every key is commented in `config/default.toml`.
#[derive(Clone, Deserialize)]
pub struct StorageSettings {
    pub backend: String,
    pub local_dir: String,
    pub bucket: String,
    pub readable_buckets: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub s3_path_style: bool,
    pub max_upload_bytes: u64,
    pub max_pixels: u64,
    pub upload_timeout_seconds: u64,
    pub processing_concurrency: usize,
    pub strip_player_metadata: bool,
    pub unused_upload_seconds: u64,
    pub sweep_interval_seconds: u64,
    pub signed_url_seconds: u64,
    pub spool_dir: String,
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("backend", &self.backend)
            .field("local_dir", &self.local_dir)
            .field("bucket", &self.bucket)
            .field("readable_buckets", &self.readable_buckets)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &redacted(&self.s3_access_key_id))
            .field(
                "s3_secret_access_key",
                &redacted(&self.s3_secret_access_key),
            )
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_pixels", &self.max_pixels)
            .finish_non_exhaustive()
    }
}

impl StorageSettings {
    /// The buckets attachments may be read from: `bucket` first, then `readable_buckets`.
    pub fn buckets(&self) -> Vec<String> {
        let mut all = vec![self.bucket.trim().to_owned()];
        for b in self.readable_buckets.split(',').map(str::trim) {
            if !b.is_empty() && !all.iter().any(|a| a == b) {
                all.push(b.to_owned());
            }
        }
        all
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(format!("storage.{m}")));
        if !matches!(self.backend.as_str(), "local" | "s3") {
            return invalid("backend must be \"local\" or \"s3\"");
        }
        // The database's check on attachment_bucket (sql/0220) takes the same names.
        let bucket_ok = |b: &str| {
            (1..=63).contains(&b.len())
                && b.bytes().enumerate().all(|(i, c)| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || (i > 0 && matches!(c, b'.' | b'_' | b'-'))
                })
        };
        if !self.buckets().iter().all(|b| bucket_ok(b)) {
            return invalid(
                "bucket and readable_buckets: lower-case letters, digits, '.', '_', '-'",
            );
        }
        if self.backend == "s3"
            && (self.s3_access_key_id.is_empty() || self.s3_secret_access_key.is_empty())
        {
            return invalid(
                "s3_access_key_id and s3_secret_access_key are required with backend \"s3\"",
            );
        }
        if self.max_upload_bytes == 0
            || self.max_pixels == 0
            || self.processing_concurrency == 0
            || self.unused_upload_seconds == 0
        {
            return invalid(
                "max_upload_bytes, max_pixels and processing_concurrency must be at least 1",
            );
        }
        Ok(())
    }
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
            ("SUPABASE_URL", "auth.supabase_url"),
            ("SUPABASE_SECRET_KEYS", "auth.secret_keys"),
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
        AllowedOrigins::parse(&server.allowed_origins)
            .map_err(|e| ConfigError::Invalid(format!("server.allowed_origins: {e}")))?;
        self.storage.validate()?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::Invalid(
                "database.pool_size must be at least 1".into(),
            ));
        }
        self.validate_auth()
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if let Some(base) = auth.supabase_base_url() {
            let ok = reqwest::Url::parse(&base)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError::Invalid(
                    "SUPABASE_URL must be the project URL, e.g. https://<ref>.supabase.co or http://127.0.0.1:54321".into(),
                ));
            }
        }
        for key in auth.secret_keys() {
            if !key.starts_with("sb_secret_") {
                // Never echo the value: it may be a real key pasted into the wrong variable.
                return Err(ConfigError::Invalid(
                    "SUPABASE_SECRET_KEYS holds only secret keys (sb_secret_...); publishable keys grant nothing".into(),
                ));
            }
        }
        if !(1..=600).contains(&auth.jwks_refresh_seconds) {
            return Err(ConfigError::Invalid(
                "auth.jwks_refresh_seconds must be between 1 and 600".into(),
            ));
        }
        if auth.jwks_min_refetch_seconds == 0 || auth.jwks_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "auth.jwks_min_refetch_seconds and auth.jwks_timeout_seconds must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What serving needs beyond [`Settings::load`]'s checks: with an external database, a way to
    /// verify access tokens (signing keys or the legacy secret). `migrate` does not need one,
    /// hence a separate check.
    pub fn validate_for_serving(&self) -> Result<(), ConfigError> {
        if !self.uses_embedded_database()
            && self.auth.jwt_secret.is_empty()
            && self.auth.supabase_base_url().is_none()
        {
            return Err(ConfigError::Invalid(
                "with an external database (DATABASE_URL) set SUPABASE_URL (signing keys) or SUPABASE_JWT_SECRET (legacy JWT secret), or both".into(),
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
    /// None: no linger (flush as soon as the queue is drained).
    pub fn write_linger(&self) -> Option<Duration> {
        (self.write_linger_micros > 0).then(|| Duration::from_micros(self.write_linger_micros))
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds.max(1))
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds.max(1))
    }
}

/// The parsed `server.allowed_origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    /// Lower-case `scheme://host[:port]`, as browsers send the `Origin` header.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// `*`, or a comma-separated list of origins (`https://staff.example.club`).
    pub fn parse(setting: &str) -> Result<AllowedOrigins, String> {
        let entries: Vec<&str> = setting
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() || entries.contains(&"*") {
            return Ok(AllowedOrigins::Any);
        }
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = entry.trim_end_matches('/').to_ascii_lowercase();
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("'{entry}' is not an origin like https://example.club"))?;
            if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
                return Err(format!(
                    "'{entry}' is not an origin like https://example.club (no path)"
                ));
            }
            list.push(origin);
        }
        Ok(AllowedOrigins::List(list))
    }

    /// Whether a page of this origin (the `Origin` header's value) may call.
    pub(crate) fn allows_str(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => {
                let o = origin.trim_end_matches('/');
                list.iter().any(|allowed| allowed.eq_ignore_ascii_case(o))
            }
        }
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
    fn supabase_names_and_redaction() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "DATABASE_URL",
                    "postgres://relay:hunter2@db:5432/x?sslmode=require",
                ),
                ("SUPABASE_URL", "http://127.0.0.1:54321/"),
                ("SUPABASE_SECRET_KEYS", "sb_secret_aaaa, sb_secret_bbbb,"),
                ("SUPABASE_JWT_SECRET", "s3cret-value"),
            ]),
        )
        .expect("load");
        assert_eq!(
            s.auth.supabase_base_url().as_deref(),
            Some("http://127.0.0.1:54321")
        );
        assert_eq!(s.auth.secret_keys(), ["sb_secret_aaaa", "sb_secret_bbbb"]);
        let shown = format!("{s:?}");
        for secret in [
            "hunter2",
            "s3cret-value",
            "sb_secret_aaaa",
            "sb_secret_bbbb",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("relay:(redacted)@db:5432"), "{shown}");
        assert_eq!(
            redact_url_password("host=db password=x user=u"),
            "host=db password=(redacted) user=u"
        );
        s.validate_for_serving().expect("signing keys suffice");
    }

    #[test]
    fn auth_settings_are_checked() {
        let bad = |pairs: &[(&str, &str)]| Settings::load_from(None, env(pairs)).is_err();
        assert!(bad(&[("SUPABASE_URL", "not a url")]));
        assert!(bad(&[("SUPABASE_URL", "ftp://example.com")]));
        assert!(bad(&[("SUPABASE_SECRET_KEYS", "sb_publishable_abc")]));
        assert!(bad(&[("GRE_AUTH__JWKS_REFRESH_SECONDS", "601")]));
        let external = Settings::load_from(None, env(&[("DATABASE_URL", "postgres://u@db/x")]))
            .expect("migrate needs no credentials");
        let err = external.validate_for_serving().expect_err("serving does");
        assert!(err.to_string().contains("SUPABASE_JWT_SECRET"), "{err}");
        assert!(err.to_string().contains("SUPABASE_URL"), "{err}");
    }

    #[test]
    fn storage_settings_are_checked_and_the_s3_secret_never_shown() {
        let s = Settings::defaults().expect("defaults");
        assert_eq!(s.storage.backend, "local");
        assert_eq!(s.storage.max_upload_bytes, 10 * 1024 * 1024);
        assert_eq!(s.storage.buckets(), ["gre-chat"]);
        let bad = |pairs: &[(&str, &str)]| Settings::load_from(None, env(pairs)).is_err();
        assert!(bad(&[("GRE_STORAGE__BACKEND", "ftp")]));
        assert!(bad(&[("GRE_STORAGE__BACKEND", "s3")]), "keys are required");
        assert!(bad(&[("GRE_STORAGE__BUCKET", "Not_A_Bucket")]));
        assert!(bad(&[("GRE_STORAGE__READABLE_BUCKETS", "ok, ../etc")]));
        assert!(bad(&[("GRE_STORAGE__MAX_UPLOAD_BYTES", "0")]));
        assert!(bad(&[("GRE_STORAGE__UNUSED_UPLOAD_SECONDS", "0")]));
        let s = Settings::load_from(
            None,
            env(&[
                ("GRE_STORAGE__BACKEND", "s3"),
                ("GRE_STORAGE__S3_ACCESS_KEY_ID", "AKIA-visible-id"),
                ("GRE_STORAGE__S3_SECRET_ACCESS_KEY", "s3-secret-value"),
                ("GRE_STORAGE__READABLE_BUCKETS", "staff-files, gre-chat,"),
            ]),
        )
        .expect("s3 settings");
        assert_eq!(s.storage.buckets(), ["gre-chat", "staff-files"]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3-secret-value"), "{shown}");
        assert!(!shown.contains("AKIA-visible-id"), "{shown}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let err = Settings::load_from(None, env(&[("GRE_WEBSOCKET__OUTBOUND_QUEUE", "0")]));
        assert!(err.is_err());
        let err = Settings::load_from(None, env(&[("PORT", "not-a-port")]));
        assert!(err.is_err());
    }
}
