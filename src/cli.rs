//! The command line: `gre-relay [serve]`, `gre-relay migrate`, `gre-relay token`.
//! Resolves where the database and the JWT secret come from (configured, or the embedded default)
//! and then hands over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::auth;
use crate::config::Settings;
use crate::embedded_postgres::{ClusterOptions, EmbeddedPostgres};
use crate::migrate::{self, Outcome};
use crate::server::Relay;

#[derive(Debug, Parser)]
#[command(
    name = "gre-relay",
    version,
    about = "Real-time relay from PostgreSQL to WebSocket clients for the GRE chat"
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
    /// Print a token signed with the configured secret, for development and tests.
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
    },
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
        } => {
            let secret = jwt_secret(&settings)?;
            let ttl = Duration::from_secs(ttl);
            let token = match (player, staff) {
                (Some(p), _) => auth::mint_player_token(&secret, p, ttl),
                (None, Some(s)) => auth::mint_staff_token(&secret, &s, name.as_deref(), ttl),
                (None, None) => anyhow::bail!("give --player ID or --staff ID"),
            };
            println!("{token}");
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
        anyhow::bail!("SUPABASE_JWT_SECRET is not set: it is required with an external database (DATABASE_URL)");
    }
    load_or_create_secret(&settings.database.embedded.dir.join("jwt_secret"))
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
    std::fs::write(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::admission::raise_descriptor_limit(&settings);
    let secret = jwt_secret(&settings)?;
    let (url, mut embedded) = database(&settings).await?;
    let bind = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let relay = match Relay::start(settings.clone(), &url, &secret, listener).await {
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
