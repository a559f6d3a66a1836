//! Keeps the load tool working: a few-second `gre-bench --smoke` run of each mode against a real
//! relay process (or, for `compare` and `ceiling`, the database alone; `scale` starts its own
//! relay processes). Figures come from full runs (docs/performance.md), never from here.
//!
//! gre-bench is its own workspace crate (crates/gre-bench), so cargo does not hand this test its
//! path; [`gre_bench`] builds it (a no-op when it is fresh) next to the relay's binary.

use crate::support::*;
use std::time::Duration;

async fn bench(args: &[&str], env: &TestEnv, relay: &RelayProcess) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--ws", &relay.ws_url]);
    run(&all, env).await
}

/// The gre-bench binary of this build, built first: `cargo build -p gre-bench` into the target
/// directory of the relay binary under test (so the same profile, the same sources).
async fn gre_bench() -> std::path::PathBuf {
    let relay = std::path::Path::new(env!("CARGO_BIN_EXE_gre-relay"));
    let profile_dir = relay
        .parent()
        .expect("the binary is in a profile directory");
    let target_dir = profile_dir
        .parent()
        .expect("the profile is in a target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = tokio::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "gre-bench", "--bin", "gre-bench"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .kill_on_drop(true);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = tokio::time::timeout(Duration::from_secs(600), cmd.status())
        .await
        .expect("gre-bench built in time")
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p gre-bench failed");
    profile_dir.join("gre-bench")
}

/// Runs `gre-bench ARGS --smoke` on the test database and returns its last line (JSON).
async fn run(args: &[&str], env: &TestEnv) -> serde_json::Value {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(gre_bench().await)
            .args(args)
            .arg("--smoke")
            .env("DATABASE_URL", &env.url)
            .env("SUPABASE_JWT_SECRET", SECRET)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("gre-bench finished in time")
    .expect("gre-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gre-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the last line is JSON ({e}): {last}"))
}

#[tokio::test]
async fn the_load_tool_runs_and_counts_every_message() {
    let env = TestEnv::start().await;
    let mut relay = RelayProcess::spawn(&env.url).await;
    let load = bench(&["load"], &env, &relay).await;
    assert_eq!(load["ok"], true, "{load}");
    assert_eq!(load["delivery"]["lost"], 0, "{load}");
    assert_eq!(load["delivery"]["duplicated"], 0, "{load}");
    assert_eq!(
        load["delivery"]["received"], load["delivery"]["expected"],
        "{load}"
    );
    let announce = bench(&["announce"], &env, &relay).await;
    assert_eq!(announce["ok"], true, "{announce}");
    let idle = bench(&["idle"], &env, &relay).await;
    assert_eq!(idle["ok"], true, "{idle}");
    relay.terminate().await;
}

#[tokio::test]
async fn the_database_modes_compare_both_schemas() {
    // The database alone (TestEnv's relay only migrated it; no socket connects).
    let env = TestEnv::start().await;
    let compare = run(&["compare"], &env).await;
    assert_eq!(compare["ok"], true, "{compare}");
    let runs = compare["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "one peer and one gre run: {compare}");
    for r in runs {
        assert!(r["rows"].as_u64().unwrap_or(0) > 0, "{compare}");
        assert_eq!(r["insert_errors"], 0, "{compare}");
    }
    // Every peer row's notification reached the tool's own LISTEN (its payload quotes the
    // text). gre's payloads may carry identifiers only; then rows are matched by session id,
    // and never more than were written.
    assert_eq!(runs[0]["side"], "peer", "{compare}");
    assert_eq!(
        runs[0]["sent_to_listen"]["count"], runs[0]["rows"],
        "{compare}"
    );
    assert!(
        runs[1]["sent_to_listen"]["count"].as_u64().unwrap_or(0)
            <= runs[1]["rows"].as_u64().unwrap_or(0),
        "{compare}"
    );
    assert!(
        compare["medians"]["commit_p50_ms"]["ratio"].is_number(),
        "{compare}"
    );
    // The players were marked connected: no push notification for the run's rows, and the
    // tool removed its rows and its presence afterwards.
    let db = env.db().await;
    let left: i64 = db
        .query_one(
            "select (select count(*) from push_notifications) + (select count(*) from gre_relay.relay_instances where hostname = 'gre-bench') + (select count(*) from bench_peer.messages)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    let ceiling = run(&["ceiling"], &env).await;
    assert_eq!(ceiling["ok"], true, "{ceiling}");
    assert_eq!(
        ceiling["closed_loop"].as_array().map(Vec::len),
        Some(2),
        "{ceiling}"
    );
    assert_eq!(
        ceiling["curve"].as_array().map(Vec::len),
        Some(2),
        "{ceiling}"
    );
}

#[tokio::test]
async fn the_scale_mode_runs_relays_and_loses_nothing() {
    let env = TestEnv::start().await;
    let scale = run(
        &["scale", "--relay-bin", env!("CARGO_BIN_EXE_gre-relay")],
        &env,
    )
    .await;
    assert_eq!(scale["ok"], true, "{scale}");
    let configs = scale["configurations"].as_array().expect("configurations");
    assert_eq!(configs.len(), 2, "{scale}");
    for c in configs {
        assert_eq!(c["delivery"]["lost"], 0, "{scale}");
        assert_eq!(
            c["listen_backends"], c["relays"],
            "one LISTEN backend per relay: {scale}"
        );
    }
}
