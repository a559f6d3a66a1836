//! Keeps the load tool working: a few-second `gre-bench --smoke` run of each mode against a real
//! relay process. Figures come from full runs (docs/performance.md), never from here.

mod support;

use std::time::Duration;
use support::*;

async fn bench(args: &[&str], env: &TestEnv, relay: &RelayProcess) -> serde_json::Value {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gre-bench"))
            .args(args)
            .args(["--smoke", "--ws", &relay.ws_url])
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
