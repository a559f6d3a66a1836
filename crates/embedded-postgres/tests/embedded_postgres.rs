//! The embedded cluster's lifecycle against the real PostgreSQL binaries: start, persistence
//! across stop/restart, crash and recovery, isolation of concurrent clusters, and the error
//! shown when no binaries exist.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use embedded_postgres::*;
use tokio::time::timeout;
use tokio_postgres::{Client, NoTls};

/// Bound for anything that starts or stops a server (a fresh initdb included).
const SLOW: Duration = Duration::from_secs(60);
/// Bound for a single query.
const QUICK: Duration = Duration::from_secs(10);

fn template() -> PathBuf {
    std::env::temp_dir().join(format!(
        "gre-relay-test-template-{}",
        nix::unistd::geteuid().as_raw()
    ))
}

fn test_options(dir: &tempfile::TempDir) -> ClusterOptions {
    let mut opts = ClusterOptions::new(dir.path().join("state"));
    opts.ephemeral = true;
    opts.template = Some(template());
    opts
}

async fn start(opts: ClusterOptions) -> EmbeddedPostgres {
    let began = Instant::now();
    let pg = timeout(SLOW, EmbeddedPostgres::start(opts))
        .await
        .expect("start timed out")
        .expect("start failed");
    eprintln!(
        "cluster on port {} started in {:?}",
        pg.port(),
        began.elapsed()
    );
    pg
}

async fn connect(url: &str) -> Client {
    let (client, connection) = timeout(QUICK, tokio_postgres::connect(url, NoTls))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    tokio::spawn(connection);
    client
}

async fn query_i32(client: &Client, sql: &str) -> i32 {
    timeout(QUICK, client.query_one(sql, &[]))
        .await
        .expect("query timed out")
        .expect("query failed")
        .get(0)
}

async fn execute(client: &Client, sql: &str) {
    timeout(QUICK, client.batch_execute(sql))
        .await
        .expect("statement timed out")
        .expect("statement failed");
}

async fn stop(pg: &mut EmbeddedPostgres) {
    timeout(SLOW, pg.stop())
        .await
        .expect("stop timed out")
        .expect("stop failed");
}

async fn restart(pg: &mut EmbeddedPostgres) {
    timeout(SLOW, pg.restart())
        .await
        .expect("restart timed out")
        .expect("restart failed");
}

#[tokio::test]
async fn data_survives_stop_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pg = start(test_options(&tmp)).await;
    let port = pg.port();
    assert!(pg.url().starts_with("postgres://postgres:"));
    assert!(pg.url().ends_with(&format!("@127.0.0.1:{port}/postgres")));

    let client = connect(&pg.url()).await;
    assert_eq!(query_i32(&client, "select 1").await, 1);
    execute(
        &client,
        "create table t (v int); insert into t values (42);",
    )
    .await;
    drop(client);

    stop(&mut pg).await;
    stop(&mut pg).await; // idempotent
    assert!(tokio_postgres::connect(&pg.url(), NoTls).await.is_err());

    restart(&mut pg).await;
    assert_eq!(pg.port(), port);
    let client = connect(&pg.url()).await;
    assert_eq!(query_i32(&client, "select v from t").await, 42);
    drop(client);
    stop(&mut pg).await;
}

#[tokio::test]
async fn kill_then_restart_recovers_on_same_port() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pg = start(test_options(&tmp)).await;
    let port = pg.port();
    let client = connect(&pg.url()).await;
    execute(&client, "create table t (v int); insert into t values (7);").await;

    timeout(SLOW, pg.kill()).await.unwrap().unwrap();
    // The crash also ended the backend serving this client.
    assert!(timeout(QUICK, client.query_one("select 1", &[]))
        .await
        .unwrap()
        .is_err());

    let began = Instant::now();
    restart(&mut pg).await;
    eprintln!("restart after kill took {:?}", began.elapsed());
    assert_eq!(pg.port(), port);
    let client = connect(&pg.url()).await;
    assert_eq!(query_i32(&client, "select v from t").await, 7);
    drop(client);
    stop(&mut pg).await;
}

#[tokio::test]
async fn concurrent_clusters_are_isolated() {
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = tokio::join!(start(test_options(&tmp_a)), start(test_options(&tmp_b)));
    assert_ne!(a.port(), b.port());

    let (ca, cb) = (connect(&a.url()).await, connect(&b.url()).await);
    execute(&ca, "create table only_in_a (v int);").await;
    assert_eq!(
        query_i32(
            &cb,
            "select count(*)::int from pg_tables where tablename = 'only_in_a'"
        )
        .await,
        0
    );
    assert_eq!(query_i32(&ca, "select 2").await, 2);
    drop((ca, cb));
    stop(&mut a).await;
    stop(&mut b).await;
}

#[tokio::test]
async fn bogus_bin_dir_explains_how_to_get_postgres() {
    let err = find_bin_dir(Some(std::path::Path::new("/nonexistent/gre-relay/bin"))).unwrap_err();
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ClusterOptions::new(tmp.path());
    opts.bin_dir = Some(tmp.path().join("no-such-bin"));
    let err = timeout(QUICK, EmbeddedPostgres::start(opts))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, EmbeddedError::NoBinaries(_)), "{err}");
}

/// The real embedded default's path: initdb without a template, durable settings, a second
/// start (after Drop stopped the first) finding the same cluster and password.
#[tokio::test]
async fn fresh_cluster_persists_across_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ClusterOptions::new(tmp.path().join("state"));
    let pg = start(opts.clone()).await;
    let url = pg.url();
    let client = connect(&url).await;
    execute(
        &client,
        "create table t (v text); insert into t values ('kept');",
    )
    .await;
    drop(client);
    let password = std::fs::read_to_string(pg.dir().join("password")).unwrap();
    assert_eq!(password.len(), 32);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pg.dir().join("password"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    drop(pg); // Drop's synchronous SIGINT path

    let pg = start(opts).await;
    assert_eq!(pg.password(), password);
    let client = connect(&pg.url()).await;
    let row = timeout(QUICK, client.query_one("select v from t", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "kept");
}

/// A server left behind by a crashed run (here: the handle is leaked) is stopped by the next
/// start on the same directory.
#[tokio::test]
async fn leftover_server_is_stopped_on_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let first = start(test_options(&tmp)).await;
    let leftover = first.pid().unwrap() as i32;
    std::mem::forget(first);

    let mut second = start(test_options(&tmp)).await;
    assert_ne!(second.pid().unwrap() as i32, leftover);
    // The leftover is this process's child, stopped by the second start; reap it, or it would
    // outlive the test as a zombie.
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(leftover), None).unwrap();
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(..)),
        "{status:?}"
    );
    let client = connect(&second.url()).await;
    assert_eq!(query_i32(&client, "select 1").await, 1);
    drop(client);
    stop(&mut second).await;
}

/// As root the server runs as the postgres user, who cannot enter a 0700 root-owned
/// directory: the cluster then lives in a /var/tmp fallback instead.
#[tokio::test]
async fn unreachable_dir_falls_back_to_var_tmp_as_root() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut opts = test_options(&tmp);
    opts.dir = private.join("state");

    let mut pg = start(opts).await;
    let client = connect(&pg.url()).await;
    assert_eq!(query_i32(&client, "select 1").await, 1);
    drop(client);
    stop(&mut pg).await;
    if nix::unistd::geteuid().is_root() {
        assert!(pg.dir().starts_with("/var/tmp"), "{}", pg.dir().display());
        assert!(pg
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gre-relay-"));
        std::fs::remove_dir_all(pg.dir()).unwrap();
    } else {
        assert_eq!(pg.dir(), private.join("state").canonicalize().unwrap());
    }
}

/// A fixed port held by another server: the start fails with the server's own explanation,
/// and the readiness probe must not mistake the other server for ours.
#[tokio::test]
async fn taken_fixed_port_reports_the_log() {
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start(test_options(&tmp_a)).await;
    let mut opts = test_options(&tmp_b);
    opts.port = a.port();
    let err = timeout(SLOW, EmbeddedPostgres::start(opts))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, EmbeddedError::Exited(_)), "{err}");
    assert!(err.to_string().contains("Address already in use"), "{err}");
    stop(&mut a).await;
}
