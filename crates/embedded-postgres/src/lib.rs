//! The lifecycle of one private PostgreSQL cluster: find the server binaries installed on the
//! machine, create the cluster on first use (or clone a test template), start `postgres` as a
//! child process listening on 127.0.0.1 only, wait until it accepts connections, and stop it.
//!
//! This is what gre-relay runs on when no database is configured (the "embedded default", whose
//! data persists between runs) and what the test suite uses for its ephemeral clusters.
//!
//! What it owns: in its state directory, `pgdata/`, `postgres.log` (and `postgres.log.1`),
//! `password`, and the transient `pgdata.init/`, `pgdata.copy/`, `pwfile.tmp`, `*.partial`; in a
//! test template directory, also `bin_dir`, plus the `<template>.lock` beside it; and the server
//! processes it started. As root, it hands the state directory itself to the `postgres` OS user
//! (the server refuses to run as root), or moves to a /var/tmp fallback when that user cannot
//! reach it.
//!
//! What it must not touch: any other cluster, the system-wide PostgreSQL service and its sockets
//! (the server gets no unix socket at all), and files in the state directory it did not create
//! (other modules keep their own files there). It connects only to the cluster it started, and
//! signals only its own child, that child's children, and the process the cluster's
//! `postmaster.pid` names.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chown, geteuid, Gid, Pid, Uid, User};
use rand::distr::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The superuser role initdb creates; also the OS account the server runs as when we are root.
const SUPERUSER: &str = "postgres";
/// How long `start` waits for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness and process exit are polled.
const POLL: Duration = Duration::from_millis(50);
/// How long `stop` waits after a fast shutdown request before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Drop blocks the thread, so it gives up sooner than `stop`.
#[cfg(feature = "testing")]
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leftover server from a crashed run gets to shut down.
const STALE_TIMEOUT: Duration = Duration::from_secs(15);
/// After SIGKILL, the server's children are gone within milliseconds; this only bounds the wait.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of `postgres.log` quoted in start errors.
const LOG_TAIL_LINES: usize = 20;
/// `postgres.log` is appended to forever; past this size it is rotated once at start.
const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// Auto-picked ports can be taken between picking and binding; retry that many times.
const PORT_ATTEMPTS: usize = 3;

/// How to create and run one cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// State directory: holds `pgdata/` (the cluster), `postgres.log`, `password` (the generated
    /// superuser password). Created if missing.
    pub dir: PathBuf,
    /// TCP port on 127.0.0.1; 0 = pick a free one at each start.
    pub port: u16,
    /// Override directory holding initdb/postgres.
    pub bin_dir: Option<PathBuf>,
    /// For tests: fsync=off, full_page_writes=off and `initdb --no-sync`: survives a server
    /// crash (kill()), not an OS crash. Never for the real embedded default.
    pub ephemeral: bool,
    /// For tests: if set and `dir/pgdata` does not exist yet, copy this template cluster
    /// (created once with initdb under an exclusive lock on `<template>.lock`, so parallel test
    /// processes create it only once) instead of running initdb. Clones share the template's
    /// password.
    pub template: Option<PathBuf>,
}

impl ClusterOptions {
    /// Port 0, no bin_dir, not ephemeral, no template.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            port: 0,
            bin_dir: None,
            ephemeral: false,
            template: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Payload: where we looked.
    #[error(
        "PostgreSQL server binaries (initdb and postgres) not found ({0}). Install PostgreSQL \
         (`apt-get install postgresql` on Debian), or set DATABASE_URL to an existing database, \
         or set the embedded bin dir option (database.embedded.bin_dir, \
         GRE_DATABASE__EMBEDDED__BIN_DIR) to the directory holding initdb and postgres"
    )]
    NoBinaries(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Payload: the command's exit status and output.
    #[error("initdb failed: {0}")]
    InitDb(String),
    /// Payload: the last connection error and the tail of `postgres.log`.
    #[error("PostgreSQL did not accept connections within {secs}s: {0}", secs = START_TIMEOUT.as_secs())]
    StartTimeout(String),
    /// Payload: the exit status and the tail of `postgres.log`.
    #[error("PostgreSQL exited while starting: {0}")]
    Exited(String),
    #[error(
        "running as root, which initdb and postgres refuse, and there is no `postgres` OS user \
         to run them as: create one (`useradd --system postgres`, or install PostgreSQL), run \
         as a non-root user, or set DATABASE_URL to an existing database"
    )]
    NoUnprivilegedUser,
    #[error(
        "a PostgreSQL server (pid {pid}) left over from an earlier run still uses {data_dir} \
         and did not stop within {}s of SIGINT",
        STALE_TIMEOUT.as_secs()
    )]
    StaleServer { pid: i32, data_dir: PathBuf },
    /// The state directory is unusable as it is (e.g. a cluster without its password file).
    #[error("embedded PostgreSQL state: {0}")]
    State(String),
}

/// Wraps an io::Error with what we were doing, for `map_err`.
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

fn errno_err(context: impl Into<String>) -> impl FnOnce(Errno) -> EmbeddedError {
    let context = context.into();
    move |errno| EmbeddedError::Io {
        context,
        source: io::Error::from(errno),
    }
}

/// The OS account initdb and postgres run as when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    /// Becomes the child's uid and the owner of the directories the server writes.
    uid: Uid,
    /// The child's only group: std drops supplementary groups when it switches uid, so
    /// directory access is checked against this group alone.
    gid: Gid,
}

impl RunAs {
    /// `None` when we are not root: the server then runs as ourselves.
    fn detect() -> Result<Option<RunAs>, EmbeddedError> {
        if !geteuid().is_root() {
            return Ok(None);
        }
        match User::from_name(SUPERUSER) {
            Ok(Some(user)) => Ok(Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })),
            Ok(None) => Err(EmbeddedError::NoUnprivilegedUser),
            Err(e) => Err(errno_err("looking up the `postgres` OS user")(e)),
        }
    }

    fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }

    /// Whether this account may pass through a directory with these attributes (ACLs ignored).
    fn can_traverse(self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    fn chown(self, path: &Path) -> Result<(), EmbeddedError> {
        chown(path, Some(self.uid), Some(self.gid)).map_err(errno_err(format!(
            "chown {} to the postgres user",
            path.display()
        )))
    }
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Finds the PostgreSQL server binaries: the override directory if given (and only it, so a
/// wrong setting is reported rather than silently replaced), else the directory of `initdb` on
/// PATH (symlinks resolved, because wrappers in /usr/local/bin link into the real bin dir), else
/// `pg_config --bindir`, else the highest version in /usr/lib/postgresql/*/bin.
pub fn find_bin_dir(override_dir: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    if let Some(dir) = override_dir {
        if has_server_binaries(dir) {
            return Ok(dir.to_path_buf());
        }
        return Err(EmbeddedError::NoBinaries(format!(
            "the configured bin dir {} does not contain both",
            dir.display()
        )));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for entry in std::env::split_paths(&path) {
            let candidate = entry.join("initdb");
            if !is_executable(&candidate) {
                continue;
            }
            if let Some(dir) = fs::canonicalize(&candidate)
                .ok()
                .and_then(|real| real.parent().map(Path::to_path_buf))
            {
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
            }
        }
    }
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            // pg_config ships with libpq-dev too, without any server.
            if has_server_binaries(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            let bin = entry.path().join("bin");
            Some((version?, bin)).filter(|(_, bin)| has_server_binaries(bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    Err(EmbeddedError::NoBinaries(
        "searched PATH, `pg_config --bindir` and /usr/lib/postgresql/*/bin".into(),
    ))
}

/// A free TCP port on 127.0.0.1 (bind port 0 and read it back).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// A running (or stopped) private cluster. Dropping it stops the server.
pub struct EmbeddedPostgres {
    /// The effective state directory; differs from the configured one when, as root, that one
    /// was unreachable for the postgres user and the /var/tmp fallback is used.
    dir: PathBuf,
    /// `dir/pgdata`, canonical: also what the server reports as `data_directory`, which is how
    /// readiness checks tell our server from another one on the same port.
    data_dir: PathBuf,
    /// Where the server's stdout/stderr go; quoted in start errors.
    log_path: PathBuf,
    /// Where initdb and postgres are, resolved once so restarts use the same server version.
    bin_dir: PathBuf,
    /// Kept across restarts so URLs handed out stay valid.
    port: u16,
    /// The superuser's password, from `dir/password`.
    password: String,
    /// Selects the durability-off settings at every (re)start.
    ephemeral: bool,
    /// Set when we are root: the server must run as the postgres OS user.
    run_as: Option<RunAs>,
    /// The postmaster; std rather than tokio so Drop can stop it without a runtime. `None`
    /// once stopped, killed or exited.
    child: Option<Child>,
}

impl EmbeddedPostgres {
    /// Creates the cluster on first run (initdb, or a copy of `opts.template`), then starts
    /// `postgres` as a child process and waits until it accepts connections.
    pub async fn start(opts: ClusterOptions) -> Result<Self, EmbeddedError> {
        let began = Instant::now();
        let run_as = RunAs::detect()?;
        let prep_opts = opts.clone();
        let (bin_dir, dir, password) = tokio::task::spawn_blocking(move || {
            let bin_dir = find_bin_dir(prep_opts.bin_dir.as_deref())?;
            let (dir, password) = prepare(&prep_opts, &bin_dir, run_as)?;
            Ok::<_, EmbeddedError>((bin_dir, dir, password))
        })
        .await
        .map_err(|e| EmbeddedError::State(format!("preparing the cluster panicked: {e}")))??;
        let prepared = began.elapsed();

        let mut pg = EmbeddedPostgres {
            data_dir: dir.join("pgdata"),
            log_path: dir.join("postgres.log"),
            dir,
            bin_dir,
            port: opts.port,
            password,
            ephemeral: opts.ephemeral,
            run_as,
            child: None,
        };
        let mut attempt = 1;
        loop {
            if opts.port == 0 {
                pg.port = free_port().map_err(io_err("picking a free TCP port"))?;
            }
            match pg.launch().await {
                Err(EmbeddedError::Exited(diag))
                    if opts.port == 0
                        && attempt < PORT_ATTEMPTS
                        && diag.contains("Address already in use") =>
                {
                    tracing::debug!(
                        port = pg.port,
                        "port taken before postgres bound it; retrying"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        tracing::info!(
            dir = %pg.dir.display(),
            port = pg.port,
            prepare_ms = prepared.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "embedded PostgreSQL started"
        );
        Ok(pg)
    }

    /// postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER)
    }

    /// Same but for another database name.
    pub fn url_for(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{}",
            self.password,
            self.port,
            percent_encode(dbname)
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The effective state directory (see [`ClusterOptions::dir`]; may be the /var/tmp
    /// fallback when running as root).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The postmaster's pid while we hold a child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fast shutdown (SIGINT), wait up to 30s, then SIGKILL. Idempotent.
    pub async fn stop(&mut self) -> Result<(), EmbeddedError> {
        // The child stays in `self` until it is gone, so a cancelled stop() leaves it to Drop.
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = child_pid(child);
        if try_wait(child)?.is_none() {
            // Fast shutdown: rolls back open transactions and checkpoints, so the next start
            // needs no recovery.
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while try_wait(child)?.is_none() {
                if Instant::now() >= deadline {
                    tracing::warn!(pid = pid.as_raw(), "PostgreSQL ignored SIGINT; killing it");
                    let mut killed = kill_server(pid);
                    reap(child).await?;
                    killed.wait_async().await;
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        self.child = None;
        tracing::debug!(pid = pid.as_raw(), "embedded PostgreSQL stopped");
        Ok(())
    }

    /// For fault-injection tests (feature `testing`): SIGKILL the postmaster (an immediate crash; its backends die
    /// with it), reap it, and return. The next start goes through crash recovery.
    #[cfg(feature = "testing")]
    pub async fn kill(&mut self) -> Result<(), EmbeddedError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let mut killed = kill_server(child_pid(child));
        reap(child).await?;
        self.child = None;
        // Orphaned backends would keep the old shared memory attached and make the next start
        // refuse to run; they were sent SIGKILL, so this is short.
        killed.wait_async().await;
        Ok(())
    }

    /// Start again after stop()/kill(), on the SAME port (so clients' URLs stay valid). Stops
    /// the server first if it is still running. For tests (feature `testing`): the relay never
    /// restarts its cluster.
    #[cfg(feature = "testing")]
    pub async fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.stop().await?;
        self.launch().await
    }

    /// Starts the server on `self.port` and waits until it is ours and accepts connections.
    async fn launch(&mut self) -> Result<(), EmbeddedError> {
        self.stop_stale_server().await?;
        let log = self.open_log()?;
        let log_err = log
            .try_clone()
            .map_err(io_err(format!("duplicating {}", self.log_path.display())))?;
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // No socket file: nothing to create in /var/run/postgresql, nothing to clash with.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"]);
        if self.ephemeral {
            // Not synchronous_commit=off: it would lose the last commits on kill(), which
            // fault-injection tests rely on surviving, and with fsync=off a commit costs only a
            // write() anyway.
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .current_dir(&self.dir)
            // Own process group: a Ctrl-C on the terminal reaches only us, so the relay can
            // finish its shutdown before it stops the database.
            .process_group(0);
        if let Some(run_as) = self.run_as {
            run_as.apply(&mut cmd);
        }
        let child = cmd.spawn().map_err(io_err(format!(
            "starting {}",
            self.bin_dir.join("postgres").display()
        )))?;
        self.child = Some(child);

        match self.wait_ready().await {
            Ok(()) => Ok(()),
            Err(e) => {
                // A half-started server must not outlive the failed start.
                let _ = self.stop().await;
                Err(e)
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = try_wait(child)? {
                    self.child = None;
                    return Err(EmbeddedError::Exited(format!(
                        "{status}; {}",
                        self.log_tail()
                    )));
                }
            }
            let last_error = match self.probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => format!("another PostgreSQL server answers on port {}", self.port),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(EmbeddedError::StartTimeout(format!(
                    "last connection error: {last_error}; {}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ok(true): our server accepts connections. Ok(false): a server answers, but for another
    /// data directory (the port was taken; ours will fail to bind and exit).
    async fn probe(&self) -> Result<bool, String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .password(&self.password)
            .dbname(SUPERUSER)
            .connect_timeout(Duration::from_secs(2));
        let attempt = async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| pg_error_text(&e))?;
            let driver = tokio::spawn(connection);
            let row = client.query_one("SHOW data_directory", &[]).await;
            // Dropping the client makes the connection send Terminate, so the server log gets
            // no "unexpected EOF" noise for every probe.
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
            let reported: String = row
                .and_then(|row| row.try_get(0))
                .map_err(|e| pg_error_text(&e))?;
            Ok(Path::new(&reported) == self.data_dir)
        };
        tokio::time::timeout(Duration::from_secs(3), attempt)
            .await
            .unwrap_or_else(|_| Err("connection attempt timed out".into()))
    }

    /// A server left running by a crashed run of ours would hold the data directory; ask it to
    /// shut down first.
    async fn stop_stale_server(&self) -> Result<(), EmbeddedError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
        else {
            return Ok(());
        };
        let pid = Pid::from_raw(pid);
        if !process_alive(pid) {
            return Ok(());
        }
        if is_postgres(pid) == Some(false) {
            // The pid was reused by an unrelated process; postgres would refuse to start while
            // the file names a live pid, and signalling a stranger is not ours to do.
            tracing::warn!(pid = pid.as_raw(), "removing stale {}", pid_file.display());
            return fs::remove_file(&pid_file)
                .map_err(io_err(format!("removing {}", pid_file.display())));
        }
        tracing::warn!(
            pid = pid.as_raw(),
            data_dir = %self.data_dir.display(),
            "a PostgreSQL server from an earlier run is still running; stopping it"
        );
        kill(pid, Signal::SIGINT).map_err(errno_err(format!(
            "signalling the leftover PostgreSQL server (pid {pid})"
        )))?;
        let deadline = Instant::now() + STALE_TIMEOUT;
        while process_alive(pid) {
            if Instant::now() >= deadline {
                return Err(EmbeddedError::StaleServer {
                    pid: pid.as_raw(),
                    data_dir: self.data_dir.clone(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    fn open_log(&self) -> Result<File, EmbeddedError> {
        if fs::metadata(&self.log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            let old = self.dir.join("postgres.log.1");
            fs::rename(&self.log_path, &old)
                .map_err(io_err(format!("rotating {}", self.log_path.display())))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_path)
            .map_err(io_err(format!("opening {}", self.log_path.display())))?;
        if let Some(run_as) = self.run_as {
            run_as.chown(&self.log_path)?;
        }
        Ok(log)
    }

    /// The last lines of postgres.log, for error messages.
    fn log_tail(&self) -> String {
        let mut text = format!("last lines of {}:", self.log_path.display());
        match read_tail(&self.log_path, LOG_TAIL_LINES) {
            Ok(lines) if lines.is_empty() => text.push_str(" (empty)"),
            Ok(lines) => {
                for line in lines {
                    let _ = write!(text, "\n  {line}");
                }
            }
            Err(e) => {
                let _ = write!(text, " (unreadable: {e})");
            }
        }
        text
    }
}

/// Leaves the password out: handles end up in logs.
impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("bin_dir", &self.bin_dir)
            .field("ephemeral", &self.ephemeral)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Without the `testing` feature (the relay's build): asks the server to shut down (SIGINT, a
/// fast shutdown) and returns at once, so a drop never blocks a runtime thread. The relay stops
/// its cluster with [`EmbeddedPostgres::stop`]; this covers the error paths.
#[cfg(not(feature = "testing"))]
impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(child_pid(&child), Signal::SIGINT);
        }
    }
}

/// With the `testing` feature: stops the server and waits for it (up to `DROP_TIMEOUT`, then
/// SIGKILL), so a test that drops its cluster leaves no server behind. Blocks the thread.
#[cfg(feature = "testing")]
impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child_pid(&child);
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + DROP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(POLL);
        }
        let mut killed = kill_server(pid);
        let _ = child.wait();
        killed.wait_blocking();
    }
}

fn child_pid(child: &Child) -> Pid {
    // Pids fit in i32 on every Unix; the kernel's pid_max is far below 2^31.
    Pid::from_raw(child.id() as i32)
}

fn try_wait(child: &mut Child) -> Result<Option<ExitStatus>, EmbeddedError> {
    child
        .try_wait()
        .map_err(io_err("checking on the PostgreSQL server process"))
}

/// Waits for an already-killed child without blocking the runtime.
async fn reap(child: &mut Child) -> Result<(), EmbeddedError> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    while try_wait(child)?.is_none() {
        if Instant::now() >= deadline {
            // Only a process stuck in the kernel survives SIGKILL this long.
            return Err(EmbeddedError::Io {
                context: format!("waiting for PostgreSQL (pid {}) to die", child.id()),
                source: io::Error::from(io::ErrorKind::TimedOut),
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The children of a SIGKILLed postmaster, until they are gone.
struct Killed {
    /// Still to be reaped (or seen gone).
    orphans: Vec<Pid>,
    /// Makes the orphans ours to reap; see [`Subreaper`].
    #[cfg(target_os = "linux")]
    _subreaper: Subreaper,
}

impl Killed {
    /// Reaps what it can; true once every orphan is gone.
    fn poll(&mut self) -> bool {
        self.orphans
            .retain(|pid| match waitpid(*pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(_) => false,
                // Not (yet) reparented to us: alive until it is, or someone else reaps it.
                Err(Errno::ECHILD) => process_alive(*pid),
                Err(_) => false,
            });
        self.orphans.is_empty()
    }

    async fn wait_async(&mut self) {
        let deadline = Instant::now() + KILL_TIMEOUT;
        while !self.poll() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[cfg(feature = "testing")]
    fn wait_blocking(&mut self) {
        let deadline = Instant::now() + KILL_TIMEOUT;
        while !self.poll() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Makes this process the child subreaper while held, so the children of a postmaster we
/// SIGKILL are reparented to us and reaped here instead of going to init: some container inits
/// never reap, and their zombies would linger forever. Counted, because clusters in one process
/// (tests) may be killed concurrently; the attribute is process-wide, and is only switched off
/// again if we switched it on.
#[cfg(target_os = "linux")]
struct Subreaper;

#[cfg(target_os = "linux")]
struct SubreaperState {
    /// Live `Subreaper` guards.
    users: usize,
    /// Whether the attribute was off before the first guard; then the last guard turns it off.
    turned_on: bool,
}

#[cfg(target_os = "linux")]
static SUBREAPER: std::sync::Mutex<SubreaperState> = std::sync::Mutex::new(SubreaperState {
    users: 0,
    turned_on: false,
});

#[cfg(target_os = "linux")]
impl Subreaper {
    fn acquire() -> Self {
        use nix::sys::prctl;
        let mut state = SUBREAPER.lock().unwrap_or_else(|e| e.into_inner());
        if state.users == 0 && prctl::get_child_subreaper() == Ok(false) {
            state.turned_on = prctl::set_child_subreaper(true).is_ok();
        }
        state.users += 1;
        Subreaper
    }
}

#[cfg(target_os = "linux")]
impl Drop for Subreaper {
    fn drop(&mut self) {
        let mut state = SUBREAPER.lock().unwrap_or_else(|e| e.into_inner());
        state.users = state.users.saturating_sub(1);
        if state.users == 0 && state.turned_on {
            let _ = nix::sys::prctl::set_child_subreaper(false);
            state.turned_on = false;
        }
    }
}

/// SIGKILLs the postmaster and its children. Postgres children each call setsid(), so a
/// process-group kill would miss them; the postmaster is stopped first so it cannot fork while
/// its children are listed.
fn kill_server(postmaster: Pid) -> Killed {
    #[cfg(target_os = "linux")]
    let subreaper = Subreaper::acquire();
    let _ = kill(postmaster, Signal::SIGSTOP);
    let orphans = children_of(postmaster);
    for child in &orphans {
        let _ = kill(*child, Signal::SIGKILL);
    }
    let _ = kill(postmaster, Signal::SIGKILL);
    Killed {
        orphans,
        #[cfg(target_os = "linux")]
        _subreaper: subreaper,
    }
}

/// Children of `parent`, from /proc (Linux). Elsewhere: none, and only the postmaster is
/// killed; its children exit on their own when they notice it is gone.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            proc_stat(Pid::from_raw(*pid)).is_some_and(|(_, ppid)| ppid == parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// (state, ppid) from /proc/<pid>/stat.
fn proc_stat(pid: Pid) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Alive and not a zombie: killed servers that are not our children may linger as zombies
/// when the container's init does not reap, and those hold nothing.
fn process_alive(pid: Pid) -> bool {
    match kill(pid, None) {
        Ok(()) | Err(Errno::EPERM) => !matches!(proc_stat(pid), Some(('Z', _))),
        Err(_) => false,
    }
}

/// Some(true/false) when /proc tells; None when it cannot be known.
fn is_postgres(pid: Pid) -> Option<bool> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim();
    Some(comm.starts_with("postgres") || comm.starts_with("postmaster"))
}

fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn read_tail(path: &Path, lines: usize) -> io::Result<Vec<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // Twenty log lines are far below 64 KiB; no need to read a large log whole.
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect())
}

/// Makes the state directory usable and the cluster present; returns the effective state
/// directory and the superuser password. Blocking.
fn prepare(
    opts: &ClusterOptions,
    bin_dir: &Path,
    run_as: Option<RunAs>,
) -> Result<(PathBuf, String), EmbeddedError> {
    let dir = resolve_dir(&opts.dir, run_as)?;
    let data_dir = dir.join("pgdata");
    if !data_dir.exists() {
        match &opts.template {
            Some(template) => clone_template(template, &dir, bin_dir, run_as, opts.ephemeral)?,
            None => init_cluster(&dir, bin_dir, run_as, opts.ephemeral)?,
        }
    }
    let password_path = dir.join("password");
    let password = fs::read_to_string(&password_path).map_err(|e| {
        EmbeddedError::State(format!(
            "{} exists but {} cannot be read ({e}); without it the superuser password is \
             unknown. Remove {} to create a new cluster (its data is lost)",
            data_dir.display(),
            password_path.display(),
            data_dir.display()
        ))
    })?;
    Ok((dir, password.trim().to_string()))
}

/// Creates `configured` if needed and returns the canonical directory to use. As root, the
/// directory is handed to the postgres user, or replaced by a /var/tmp fallback when that user
/// could not reach it (e.g. it lies under /root, mode 700).
fn resolve_dir(configured: &Path, run_as: Option<RunAs>) -> Result<PathBuf, EmbeddedError> {
    create_private_dir(configured)?;
    let canonical = fs::canonicalize(configured)
        .map_err(io_err(format!("resolving {}", configured.display())))?;
    let Some(run_as) = run_as else {
        return Ok(canonical);
    };
    let dir = if ancestors_traversable(&canonical, run_as) {
        canonical
    } else {
        let hash = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        let fallback = PathBuf::from(format!("/var/tmp/gre-relay-{short}"));
        tracing::warn!(
            configured = %canonical.display(),
            fallback = %fallback.display(),
            "the postgres OS user (the server cannot run as root) cannot reach the configured \
             directory; keeping the embedded cluster in the fallback directory instead"
        );
        create_private_dir(&fallback)?;
        if !ancestors_traversable(&fallback, run_as) {
            return Err(EmbeddedError::State(format!(
                "neither {} nor the fallback {} is reachable by the postgres OS user",
                canonical.display(),
                fallback.display()
            )));
        }
        fallback
    };
    let meta = fs::metadata(&dir).map_err(io_err(format!("inspecting {}", dir.display())))?;
    // Handing a shared directory such as /tmp to the postgres user would break the machine.
    if meta.mode() & 0o1002 != 0 {
        return Err(EmbeddedError::State(format!(
            "{} is a shared (world-writable or sticky) directory; use a subdirectory of it as \
             the embedded PostgreSQL state directory",
            dir.display()
        )));
    }
    if meta.uid() != run_as.uid.as_raw() {
        run_as.chown(&dir)?;
    }
    Ok(dir)
}

/// Missing parents get default permissions (they may need to be traversable by the server
/// user); the directory itself is private.
fn create_private_dir(dir: &Path) -> Result<(), EmbeddedError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other.map_err(io_err(format!("creating {}", dir.display()))),
    }
}

fn ancestors_traversable(dir: &Path, run_as: RunAs) -> bool {
    dir.ancestors()
        .skip(1)
        .all(|a| fs::metadata(a).is_ok_and(|m| run_as.can_traverse(&m)))
}

/// Runs initdb into `dir/pgdata.init`, saves the password, then renames to `dir/pgdata`, so
/// an existing `pgdata` always is a complete cluster with its password saved.
fn init_cluster(
    dir: &Path,
    bin_dir: &Path,
    run_as: Option<RunAs>,
    ephemeral: bool,
) -> Result<(), EmbeddedError> {
    let began = Instant::now();
    let staging = dir.join("pgdata.init");
    remove_dir_if_exists(&staging)?;
    let password: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    // initdb takes the password only from a file, which it reads as the server user.
    let pwfile = dir.join("pwfile.tmp");
    write_private_file(&pwfile, format!("{password}\n").as_bytes())?;
    if let Some(run_as) = run_as {
        run_as.chown(&pwfile)?;
    }
    let initdb = bin_dir.join("initdb");
    let mut cmd = Command::new(&initdb);
    cmd.arg("-D")
        .arg(&staging)
        .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--encoding=UTF8"])
        .args(["--locale=C"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .current_dir(dir)
        .stdin(Stdio::null());
    if ephemeral {
        cmd.arg("--no-sync");
    }
    if let Some(run_as) = run_as {
        run_as.apply(&mut cmd);
    }
    let output = cmd.output();
    let _ = fs::remove_file(&pwfile);
    let output = output.map_err(io_err(format!("running {}", initdb.display())))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        return Err(EmbeddedError::InitDb(format!(
            "{} exited with {}:\n{}{}",
            initdb.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    write_private_file(&dir.join("password"), password.as_bytes())?;
    let data_dir = dir.join("pgdata");
    fs::rename(&staging, &data_dir).map_err(io_err(format!(
        "renaming {} to {}",
        staging.display(),
        data_dir.display()
    )))?;
    tracing::info!(
        data_dir = %data_dir.display(),
        ms = began.elapsed().as_millis() as u64,
        "created PostgreSQL cluster"
    );
    Ok(())
}

/// Copies the template cluster (creating it first if needed) into `dir/pgdata`.
fn clone_template(
    template: &Path,
    dir: &Path,
    bin_dir: &Path,
    run_as: Option<RunAs>,
    ephemeral: bool,
) -> Result<(), EmbeddedError> {
    let template = resolve_dir(template, run_as)?;
    let mut lock_name = template.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = template.with_file_name(lock_name);
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    // Held until the copy is done: another process may otherwise be rebuilding the template
    // under us. flock locks belong to the open file, so threads of one process exclude each
    // other too.
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| errno_err(format!("locking {}", lock_path.display()))(e))?;

    // The template remembers which binaries made it: a cluster only starts with its own major
    // version.
    let marker = template.join("bin_dir");
    let made_by = fs::read_to_string(&marker).unwrap_or_default();
    let template_data = template.join("pgdata");
    if made_by != bin_dir.to_string_lossy() || !template_data.is_dir() {
        remove_dir_if_exists(&template_data)?;
        init_cluster(&template, bin_dir, run_as, ephemeral)?;
        fs::write(&marker, bin_dir.to_string_lossy().as_bytes())
            .map_err(io_err(format!("writing {}", marker.display())))?;
    }

    let staging = dir.join("pgdata.copy");
    remove_dir_if_exists(&staging)?;
    copy_tree(&template_data, &staging, run_as)?;
    let password = fs::read(template.join("password")).map_err(io_err(format!(
        "reading {}",
        template.join("password").display()
    )))?;
    write_private_file(&dir.join("password"), &password)?;
    let data_dir = dir.join("pgdata");
    fs::rename(&staging, &data_dir).map_err(io_err(format!(
        "renaming {} to {}",
        staging.display(),
        data_dir.display()
    )))
}

/// Recursive copy keeping modes (the server insists on a 0700 data directory), owned by the
/// server user.
fn copy_tree(src: &Path, dst: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedError> {
    let meta = fs::symlink_metadata(src).map_err(io_err(format!("reading {}", src.display())))?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        fs::create_dir(dst).map_err(io_err(format!("creating {}", dst.display())))?;
        for entry in fs::read_dir(src).map_err(io_err(format!("listing {}", src.display())))? {
            let entry = entry.map_err(io_err(format!("listing {}", src.display())))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()), run_as)?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err(format!("setting the mode of {}", dst.display())))?;
    } else if file_type.is_symlink() {
        let target =
            fs::read_link(src).map_err(io_err(format!("reading link {}", src.display())))?;
        std::os::unix::fs::symlink(target, dst)
            .map_err(io_err(format!("creating link {}", dst.display())))?;
        return Ok(());
    } else {
        fs::copy(src, dst).map_err(io_err(format!(
            "copying {} to {}",
            src.display(),
            dst.display()
        )))?;
    }
    if let Some(run_as) = run_as {
        run_as.chown(dst)?;
    }
    Ok(())
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), EmbeddedError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("removing {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Writes a 0600 file via a temporary name, so a crash never leaves a truncated file.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), EmbeddedError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_database_names() {
        assert_eq!(percent_encode("gre_test-1"), "gre_test-1");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn bogus_override_is_reported() {
        let err = find_bin_dir(Some(Path::new("/nonexistent/bin"))).unwrap_err();
        assert!(err.to_string().contains("apt-get install postgresql"));
    }

    #[test]
    fn proc_stat_parses_own_process() {
        let (state, ppid) = proc_stat(Pid::this()).unwrap();
        assert_ne!(state, 'Z');
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
    }
}
