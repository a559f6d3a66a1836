//! The command line: `gre-relay [serve]`, `gre-relay migrate`, `gre-relay token`.
//! Resolves where the database and the JWT secret come from (configured, or the embedded default)
//! and then hands over to the library.
//!
//! Must not touch: the relay's internals beyond `server::Relay`, `db::migrate` and `auth`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::auth;
use crate::config::Settings;
use crate::db::migrate::{self, Outcome};
use crate::server::Relay;
use embedded_postgres::{ClusterOptions, EmbeddedPostgres};

#[derive(Debug, Parser)]
#[command(
    name = "gre-relay",
    version,
    about = "Real-time relay from PostgreSQL to WebSocket clients for the GRE chat",
    after_help = "\
Environment (more in config/default.toml; GRE_SECTION__KEY overrides any setting):
  DATABASE_URL          PostgreSQL URL (direct or session mode); unset = an embedded cluster
  SUPABASE_URL          project URL: verify access tokens with its signing keys (JWKS)
  SUPABASE_JWT_SECRET   legacy HS256 JWT secret (may be set together with SUPABASE_URL)
  SUPABASE_SECRET_KEYS  secret API keys sb_secret_..., comma-separated: the service role
  PORT                  HTTP and WebSocket port (default 5000)"
)]
pub struct Cli {
    /// A TOML file read over config/default.toml (the environment still wins).
    #[arg(long, env = "GRE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the default). With no DATABASE_URL, on an embedded PostgreSQL.
    Serve,
    /// Apply what is pending of sql/ and triggers/, then exit.
    Migrate,
    /// Print an access token for development and tests: signed with the configured JWT secret,
    /// or with a private key given with --key (a local signing-key setup).
    #[command(after_help = "\
Examples:
  gre-relay token --player 29
  gre-relay token --staff staff-7 --name Anna
  gre-relay token --player 29 --key ec-private.pem --kid my-key --iss http://127.0.0.1:54321/auth/v1

With --key the relay must trust the key: serve its public JWK (kid, kty, crv, x, y) at
$SUPABASE_URL/auth/v1/.well-known/jwks.json, and set SUPABASE_URL. Make an EC key with
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out ec-private.pem
and print its public JWK with --print-jwk.")]
    Token {
        /// A player token for this player id.
        #[arg(long, conflicts_with = "staff", required_unless_present = "staff")]
        player: Option<i64>,
        /// A GRE staff token for this staff id (the token's sub).
        #[arg(long)]
        staff: Option<String>,
        /// The staff member's display name.
        #[arg(long, requires = "staff")]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// Sign with this private key (PEM, or a JWK JSON file) instead of the JWT secret:
        /// EC P-256 (ES256), RSA (RS256) or Ed25519 (EdDSA, PEM only).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The key's id, written into the token header (a JWK file's own kid is the default).
        #[arg(long, requires = "key")]
        kid: Option<String>,
        /// The algorithm; defaults to the key's.
        #[arg(long, requires = "key", value_parser = ["ES256", "RS256", "EdDSA"])]
        alg: Option<String>,
        /// The token's iss; default $SUPABASE_URL/auth/v1. Required with --key when SUPABASE_URL
        /// is not set, since the relay checks it.
        #[arg(long, value_name = "URL")]
        iss: Option<String>,
        /// Print the public JWK of --key (for a local JWKS) on a second line.
        #[arg(long, requires = "key")]
        print_jwk: bool,
    },
}

/// The async runtime, with `server.worker_threads` threads (0: tokio's default, one per core or
/// `TOKIO_WORKER_THREADS`). Settings that fail to load are reported again by [`run`].
pub fn runtime(cli: &Cli) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = Settings::load(cli.config.as_deref())
        .map(|s| s.server.worker_threads)
        .unwrap_or(0);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    Ok(builder.build()?)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let (url, mut embedded) = database(&settings).await?;
            let result = migrate::run(&url).await;
            if let Some(pg) = embedded.as_mut() {
                pg.stop().await?;
            }
            for (name, outcome) in result? {
                println!(
                    "{:<9} {name}",
                    if outcome == Outcome::Applied {
                        "applied"
                    } else {
                        "unchanged"
                    }
                );
            }
            Ok(())
        }
        Command::Token {
            player,
            staff,
            name,
            ttl,
            key,
            kid,
            alg,
            iss,
            print_jwk,
        } => {
            let issuer = iss.or_else(|| {
                settings
                    .auth
                    .supabase_base_url()
                    .map(|u| format!("{u}/auth/v1"))
            });
            let mut minter = match &key {
                Some(path) => {
                    let alg = alg
                        .as_deref()
                        .map(str::parse::<jsonwebtoken::Algorithm>)
                        .transpose()
                        .context("--alg")?;
                    if issuer.is_none() {
                        anyhow::bail!("give --iss URL (or set SUPABASE_URL): the relay checks iss of tokens signed with a key");
                    }
                    auth::Minter::from_key_file(path, kid.as_deref(), alg)
                        .with_context(|| format!("--key {}", path.display()))?
                }
                None => auth::Minter::hs256(&jwt_secret(&settings)?),
            };
            if let Some(iss) = issuer {
                minter = minter.with_issuer(iss);
            }
            let ttl = Duration::from_secs(ttl);
            let token = match (player, staff) {
                (Some(p), _) => minter.player(p, ttl)?,
                (None, Some(s)) => minter.staff(&s, name.as_deref(), ttl)?,
                (None, None) => anyhow::bail!("give --player ID or --staff ID"),
            };
            println!("{token}");
            if print_jwk {
                if let Some(jwk) = minter.public_jwk() {
                    println!("{jwk}");
                }
            }
            Ok(())
        }
    }
}

/// The configured database, or the embedded cluster started now.
async fn database(settings: &Settings) -> anyhow::Result<(String, Option<EmbeddedPostgres>)> {
    if !settings.uses_embedded_database() {
        return Ok((settings.database.url.clone(), None));
    }
    let e = &settings.database.embedded;
    let mut options = ClusterOptions::new(&e.dir);
    options.port = e.port;
    if !e.bin_dir.trim().is_empty() {
        options.bin_dir = Some(PathBuf::from(&e.bin_dir));
    }
    tracing::info!(dir = %e.dir.display(), "no DATABASE_URL: starting the embedded PostgreSQL");
    let pg = EmbeddedPostgres::start(options).await.context(
        "could not start the embedded PostgreSQL (or set DATABASE_URL to use an existing database)",
    )?;
    Ok((pg.url(), Some(pg)))
}

/// The configured secret; with the embedded default and none configured, a random one kept in
/// the embedded state directory so tokens stay valid across restarts.
fn jwt_secret(settings: &Settings) -> anyhow::Result<String> {
    if !settings.auth.jwt_secret.is_empty() {
        return Ok(settings.auth.jwt_secret.clone());
    }
    if !settings.uses_embedded_database() {
        anyhow::bail!("SUPABASE_JWT_SECRET is not set: give --key to sign with a private key, or set the secret");
    }
    load_or_create_secret(&settings.database.embedded.dir.join("jwt_secret"))
}

/// The secret the relay serves with: the configured one; none when signing keys alone are
/// configured for an external database; the embedded default's own otherwise (its demo tokens
/// need one).
fn serving_secret(settings: &Settings) -> anyhow::Result<String> {
    settings.validate_for_serving()?;
    if settings.auth.jwt_secret.is_empty() && !settings.uses_embedded_database() {
        return Ok(String::new());
    }
    jwt_secret(settings)
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
    // Created with mode 0600 from the start: written first and restricted after, the secret
    // would be readable by others for a moment.
    let mut file = {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?
    };
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::admission::raise_descriptor_limit(&settings);
    let secret = serving_secret(&settings)?;
    let (url, mut embedded) = database(&settings).await?;
    let bind = format!("{}:{}", settings.server.host, settings.server.port);
    let acceptor = TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let relay = match Relay::start(settings.clone(), &url, &secret, acceptor).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(pg) = embedded.as_mut() {
                let _ = pg.stop().await;
            }
            return Err(e);
        }
    };
    let port = relay.local_addr().port();
    let shown_host = if settings.server.host == "0.0.0.0" {
        "127.0.0.1"
    } else {
        settings.server.host.as_str()
    };
    println!(
        "gre-relay {} listening on http://{shown_host}:{port}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  WebSocket:   ws://{shown_host}:{port}/ws");
    println!("  health:      http://{shown_host}:{port}/api/gre-chat/health");
    if embedded.is_some() {
        println!(
            "  database:    {url}  (embedded, data in {})",
            settings.database.embedded.dir.display()
        );
        let player = auth::mint_player_token(&secret, 29, Duration::from_secs(86_400));
        let staff = auth::mint_staff_token(
            &secret,
            "staff-7",
            Some("Anna"),
            Duration::from_secs(86_400),
        );
        println!("  demo player token (player 29, 24 h):\n    {player}");
        println!("  demo staff token (staff-7 \"Anna\", 24 h):\n    {staff}");
        println!("  staff console: http://{shown_host}:{port}/console#token={staff}");
        println!("  player chat:   http://{shown_host}:{port}/chat#token={player}");
    }
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    tracing::info!("shutting down");
    relay.shutdown().await;
    if let Some(pg) = embedded.as_mut() {
        pg.stop().await?;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
