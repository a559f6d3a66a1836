//! The chat analytics (docs/analytics.md): `public.gre_chat_analytics()` and
//! `GET /api/gre-admin/analytics` against fixture sessions whose figures were computed by hand
//! (tests/fixtures/analytics_fixture.sql: reopening, system rows standing for auto-replies,
//! sessions still open, two GREs), the CSV parsed back to the JSON's numbers, staff-only access
//! through the relay and through the SQL functions, episodes folded by the closing trigger, and
//! the live `analytics_live` frame.

use crate::support::*;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const FIXTURE: &str = include_str!("../fixtures/analytics_fixture.sql");
const PERIOD: &str = "from=2026-11-02&to=2026-11-04";

/// Expected figures of one row: (name, value); `None` for null.
type Expected = &'static [(&'static str, Option<f64>)];

/// Computed by hand from the fixture (docs/analytics.md's definitions). Whole period:
/// FRT samples 120 (A), 30 (B1), 120 (B2), 60 (D), 300 (E), 60 (F); resolutions 600 (A),
/// 300 (B1), 1200 (B2), 1800 (E), 600 (F); reply samples 120, 60, 30 (A), 30 (B1), 120 (B2),
/// 60 (D), 300, 270 (E), 60, 120 (F). percentile_cont: the median of 6 is the mean of the 3rd
/// and 4th, p90 of n values interpolates at position 0.9 * (n - 1).
const TOTAL: Expected = &[
    ("sessions", Some(7.0)),
    ("sessionsReplied", Some(6.0)),
    ("firstResponses", Some(6.0)),
    ("unanswered", Some(1.0)),
    ("frtAvg", Some(115.0)),
    ("frtMedian", Some(90.0)),
    ("frtP90", Some(210.0)),
    ("resolved", Some(5.0)),
    ("resolutionAvg", Some(900.0)),
    ("resolutionMedian", Some(600.0)),
    ("resolutionP90", Some(1560.0)),
    ("replies", Some(10.0)),
    ("replyAvg", Some(117.0)),
    ("replyMedian", Some(90.0)),
    ("replyP90", Some(273.0)),
    ("playerMessages", Some(12.0)),
    ("greMessages", Some(10.0)),
];

/// Monday: A, B (both episodes), C, D.
const MONDAY: Expected = &[
    ("sessions", Some(5.0)),
    ("sessionsReplied", Some(4.0)),
    ("firstResponses", Some(4.0)),
    ("unanswered", Some(1.0)),
    ("frtAvg", Some(82.5)),
    ("frtMedian", Some(90.0)),
    ("frtP90", Some(120.0)),
    ("resolved", Some(3.0)),
    ("resolutionAvg", Some(700.0)),
    ("resolutionMedian", Some(600.0)),
    ("resolutionP90", Some(1080.0)),
    ("replies", Some(6.0)),
    ("replyAvg", Some(70.0)),
    ("replyMedian", Some(60.0)),
    ("replyP90", Some(120.0)),
    ("playerMessages", Some(8.0)),
    ("greMessages", Some(6.0)),
];

/// Tuesday: E and F (transferred from staff-a to staff-b).
const TUESDAY: Expected = &[
    ("sessions", Some(2.0)),
    ("sessionsReplied", Some(2.0)),
    ("firstResponses", Some(2.0)),
    ("unanswered", Some(0.0)),
    ("frtAvg", Some(180.0)),
    ("frtMedian", Some(180.0)),
    ("frtP90", Some(276.0)),
    ("resolved", Some(2.0)),
    ("resolutionMedian", Some(1200.0)),
    ("resolutionP90", Some(1680.0)),
    ("replies", Some(4.0)),
    ("replyAvg", Some(187.5)),
    ("replyMedian", Some(195.0)),
    ("replyP90", Some(291.0)),
    ("playerMessages", Some(4.0)),
    ("greMessages", Some(4.0)),
];

/// staff-a: assigned A, B's second episode, D (F went to staff-b); replied in A, B2, D, F;
/// first responder of A, B2, D, F; answered A's first two questions (120, 60), B2 (120), D (60),
/// F's first (60).
const STAFF_A: Expected = &[
    ("sessions", Some(3.0)),
    ("sessionsReplied", Some(4.0)),
    ("firstResponses", Some(4.0)),
    ("unanswered", Some(0.0)),
    ("frtAvg", Some(90.0)),
    ("frtMedian", Some(90.0)),
    ("resolved", Some(2.0)),
    ("resolutionMedian", Some(900.0)),
    ("replies", Some(5.0)),
    ("replyAvg", Some(84.0)),
    ("replyMedian", Some(60.0)),
    ("playerMessages", Some(0.0)),
    ("greMessages", Some(5.0)),
];

/// staff-b: assigned B's first episode, E and F (at its closing); replied in A, B1, E, F; first
/// responder of B1, E; answered A's third question (30), B1 (30), E (300, 270), F's second (120).
const STAFF_B: Expected = &[
    ("sessions", Some(3.0)),
    ("sessionsReplied", Some(4.0)),
    ("firstResponses", Some(2.0)),
    ("frtMedian", Some(165.0)),
    ("resolved", Some(3.0)),
    ("resolutionMedian", Some(600.0)),
    ("replies", Some(5.0)),
    ("replyAvg", Some(150.0)),
    ("replyMedian", Some(120.0)),
    ("greMessages", Some(5.0)),
];

#[track_caller]
fn check(row: &Value, expected: Expected, what: &str) {
    for (name, want) in expected {
        let got = row[*name].as_f64();
        let same = match (got, want) {
            (Some(g), Some(w)) => (g - w).abs() < 1e-6,
            (None, None) => row[*name].is_null(),
            _ => false,
        };
        assert!(same, "{what}: {name} is {}, expected {want:?}", row[*name]);
    }
}

fn row_of<'a>(body: &'a Value, key: &str) -> &'a Value {
    body["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == key))
        .unwrap_or_else(|| panic!("no row {key} in {body}"))
}

async fn get(
    env: &TestEnv,
    query: &str,
    token: Option<&str>,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut req =
        reqwest::Client::new().get(env.http_url(&format!("/api/gre-admin/analytics?{query}")));
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        req = req.header(ACCEPT, a);
    }
    tokio::time::timeout(WAIT, req.send())
        .await
        .expect("analytics request timed out")
        .expect("analytics request")
}

async fn report(env: &TestEnv, query: &str) -> Value {
    let res = get(env, query, Some(&staff_token("staff-a")), None).await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.json().await.expect("json")
}

async fn with_fixture() -> TestEnv {
    let env = TestEnv::start().await;
    env.db()
        .await
        .batch_execute(FIXTURE)
        .await
        .expect("fixture");
    env
}

#[tokio::test]
async fn report_matches_the_hand_computed_figures() {
    let env = with_fixture().await;

    let total = report(&env, &format!("{PERIOD}&group=total")).await;
    assert_eq!(total["rows"].as_array().map(Vec::len), Some(1), "{total}");
    check(row_of(&total, "total"), TOTAL, "total");
    assert_eq!(total["rows"][0]["percentiles"], "exact", "{total}");
    check(&total["totals"], TOTAL, "totals");
    assert_eq!(total["from"], "2026-11-02T00:00:00.000000Z");
    assert_eq!(total["to"], "2026-11-04T00:00:00.000000Z");
    // C (since 13:00:05) and D (since 14:02:00) wait; A, B, E, F are closed.
    assert_eq!(total["live"]["waitingNow"], 2, "{total}");
    assert_eq!(
        total["live"]["longestWaitSince"],
        "2026-11-02T13:00:05.000000Z"
    );
    assert!(total["live"]["longestWaitSeconds"].as_f64().unwrap_or(0.0) > 0.0);

    let days = report(&env, &format!("{PERIOD}&group=day")).await;
    assert_eq!(days["rows"].as_array().map(Vec::len), Some(2), "{days}");
    check(row_of(&days, "2026-11-02"), MONDAY, "monday");
    check(row_of(&days, "2026-11-03"), TUESDAY, "tuesday");
    check(&days["totals"], TOTAL, "day totals");

    let gre = report(&env, &format!("{PERIOD}&group=gre")).await;
    let bare = report(&env, &format!("{PERIOD}&group=gre&totals=false")).await;
    assert!(bare["totals"].is_null(), "{bare}");
    assert_eq!(bare["rows"], gre["rows"]);
    assert_eq!(gre["rows"].as_array().map(Vec::len), Some(2), "{gre}");
    check(row_of(&gre, "staff-a"), STAFF_A, "staff-a");
    check(row_of(&gre, "staff-b"), STAFF_B, "staff-b");

    let week = report(&env, &format!("{PERIOD}&group=hour_of_week")).await;
    let rows = week["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 168, "every hour of the week");
    let busy: HashMap<&str, i64> = rows
        .iter()
        .filter(|r| r["sessions"].as_i64() != Some(0))
        .filter_map(|r| Some((r["key"].as_str()?, r["sessions"].as_i64()?)))
        .collect();
    let expected: HashMap<&str, i64> = [
        ("1-10", 1),
        ("1-11", 1),
        ("1-12", 1),
        ("1-13", 1),
        ("1-14", 1),
        ("2-09", 1),
        ("2-15", 1),
    ]
    .into();
    assert_eq!(busy, expected);
    check(
        row_of(&week, "1-10"),
        &[
            ("playerMessages", Some(3.0)),
            ("greMessages", Some(2.0)),
            ("replies", Some(3.0)),
        ],
        "1-10",
    );

    // The first-response distribution: 30 s, 60 s twice, 120 s twice, 300 s.
    let dist = report(&env, &format!("{PERIOD}&group=first_response")).await;
    let counts: Vec<(String, i64)> = dist["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| Some((r["key"].as_str()?.to_owned(), r["firstResponses"].as_i64()?)))
        .collect();
    let want: Vec<(String, i64)> = [
        ("0-1m", 1),
        ("1-2m", 2),
        ("2-5m", 2),
        ("5-10m", 1),
        ("10-30m", 0),
        ("30-60m", 0),
        ("60m+", 0),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(counts, want);

    // Days in another zone: Kolkata is UTC+05:30, so the same period spans three local dates
    // and a date parameter means local midnight.
    let local = report(
        &env,
        "from=2026-11-02&to=2026-11-04&group=day&tz=Asia/Kolkata",
    )
    .await;
    assert_eq!(local["from"], "2026-11-01T18:30:00.000000Z");
    let keys: Vec<&str> = local["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    assert_eq!(keys, ["2026-11-02", "2026-11-03"]);
    check(&local["totals"], TOTAL, "kolkata totals");

    // The SQL function gives the API's figures (the API only carries them).
    let db = env.db().await;
    let row = db
        .query_one(
            "select frt_median, reply_p90, resolution_avg, sessions from public.gre_chat_analytics('2026-11-02', '2026-11-04', 'total')",
            &[],
        )
        .await
        .expect("sql report");
    assert_eq!(row.get::<_, Option<f64>>(0), Some(90.0));
    assert_eq!(row.get::<_, Option<f64>>(1), Some(273.0));
    assert_eq!(row.get::<_, Option<f64>>(2), Some(900.0));
    assert_eq!(row.get::<_, i64>(3), 7);
}

#[tokio::test]
async fn csv_parses_back_to_the_json_figures() {
    let env = with_fixture().await;
    let token = staff_token("staff-b");
    for group in ["day", "gre", "hour_of_week"] {
        let json = report(&env, &format!("{PERIOD}&group={group}")).await;
        for (query, accept) in [
            (format!("{PERIOD}&group={group}&format=csv"), None),
            (format!("{PERIOD}&group={group}"), Some("text/csv")),
        ] {
            let res = get(&env, &query, Some(&token), accept).await;
            assert_eq!(res.status(), StatusCode::OK);
            let ctype = res
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            assert!(ctype.starts_with("text/csv"), "{ctype}");
            let text = res.text().await.expect("csv body");
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let header: Vec<String> = reader
                .headers()
                .expect("header")
                .iter()
                .map(str::to_owned)
                .collect();
            let rows: Vec<csv::StringRecord> =
                reader.records().map(|r| r.expect("record")).collect();
            let json_rows = json["rows"].as_array().expect("rows");
            assert_eq!(rows.len(), json_rows.len(), "{group}");
            for (rec, jrow) in rows.iter().zip(json_rows) {
                for (name, cell) in header.iter().zip(rec.iter()) {
                    let want = &jrow[name.as_str()];
                    if name == "key" || name == "percentiles" {
                        assert_eq!(want.as_str(), Some(cell));
                    } else if cell.is_empty() {
                        assert!(want.is_null(), "{group} {name}: empty cell, JSON {want}");
                    } else {
                        let n: f64 = cell.parse().expect("a number");
                        assert_eq!(Some(n), want.as_f64(), "{group} {name}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn only_staff_read_analytics_through_the_relay_and_in_sql() {
    let env = with_fixture().await;
    let res = get(&env, PERIOD, Some(&player_token(101)), None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = get(&env, PERIOD, None, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = get(&env, PERIOD, Some(&player_token(101)), Some("text/csv")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = reqwest::Client::new()
        .post(env.http_url("/api/gre-admin/analytics"))
        .header(AUTHORIZATION, format!("Bearer {}", staff_token("staff-a")))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Bad parameters: 400 with a sentence of ours.
    let staff = staff_token("staff-a");
    for bad in [
        "group=week",
        "from=yesterday",
        "from=2026-11-04&to=2026-11-02",
        "from=2025-01-01&to=2026-11-02",
        "tz=Mars/Olympus",
        "from=2026-13-45",
        "format=xml",
    ] {
        let res = get(&env, bad, Some(&staff), None).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = res.json().await.expect("error json");
        assert_eq!(body["error"]["code"], "invalid_request", "{bad}: {body}");
    }

    // In SQL, as PostgREST runs a request: a player (and anon) is refused, staff reads.
    let mut db = env.db().await;
    let player = json!({"role": "authenticated", "app_metadata": {"player_id": 101}}).to_string();
    let staff_claims =
        json!({"role": "authenticated", "sub": "staff-a", "app_metadata": {"role": "gre_staff"}})
            .to_string();
    for (role, claims, call) in [
        (
            "authenticated",
            &player,
            "select * from public.gre_chat_analytics('2026-11-02', '2026-11-04', 'total')",
        ),
        (
            "authenticated",
            &player,
            "select * from public.gre_chat_analytics_live()",
        ),
        (
            "anon",
            &player,
            "select * from public.gre_chat_analytics('2026-11-02', '2026-11-04', 'total')",
        ),
        (
            "authenticated",
            &player,
            "select gre_relay.analytics_fold('00000000-0000-0000-0000-00000000000a')",
        ),
    ] {
        let tx = db.transaction().await.expect("tx");
        tx.execute(
            "select set_config('request.jwt.claims', $1, true)",
            &[claims],
        )
        .await
        .expect("claims");
        tx.batch_execute(&format!("set local role {role}"))
            .await
            .expect("role");
        let err = tx.query(call, &[]).await.expect_err(call);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{role} {call}: {err:?}"
        );
        tx.rollback().await.expect("rollback");
    }
    for (claims, table, want) in [
        (&player, "gre_relay.analytics_episodes", 0),
        (&player, "gre_relay.analytics_replies", 0),
        (&player, "gre_relay.analytics_message_counts", 0),
        (&staff_claims, "gre_relay.analytics_episodes", 5),
    ] {
        let tx = db.transaction().await.expect("tx");
        tx.execute(
            "select set_config('request.jwt.claims', $1, true)",
            &[claims],
        )
        .await
        .expect("claims");
        tx.batch_execute("set local role authenticated")
            .await
            .expect("role");
        let n: i64 = tx
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .expect(table)
            .get(0);
        assert_eq!(n, want, "{table} for {claims}");
        tx.rollback().await.expect("rollback");
    }
    let tx = db.transaction().await.expect("tx");
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&staff_claims],
    )
    .await
    .expect("claims");
    tx.batch_execute("set local role authenticated")
        .await
        .expect("role");
    let n: i64 = tx
        .query_one(
            "select sessions from public.gre_chat_analytics('2026-11-02', '2026-11-04', 'total')",
            &[],
        )
        .await
        .expect("staff reads")
        .get(0);
    assert_eq!(n, 7);
    let w: i64 = tx
        .query_one(
            "select waiting_now from public.gre_chat_analytics_live()",
            &[],
        )
        .await
        .expect("live")
        .get(0);
    assert_eq!(w, 2);
    tx.rollback().await.expect("rollback");
}

/// The trigger path in real time: a session closed, reopened and closed again through the
/// relay's REST API has two episodes, and the report (stored facts plus the live part) counts
/// them the same before and after the closing.
#[tokio::test]
async fn closing_and_reopening_through_the_relay_fold_episodes() {
    let env = TestEnv::start().await;
    // The desk off: its auto-reply would be one more (system) message of the episode.
    desk_off(&env.db().await).await;
    let http = reqwest::Client::new();
    let staff = format!("Bearer {}", staff_token("staff-7"));
    let send = |body: Value| {
        http.post(env.http_url("/api/gre-chat/send"))
            .header(AUTHORIZATION, format!("Bearer {}", player_token(29)))
            .json(&body)
            .send()
    };
    let sent: Value = send(json!({"message": "hello"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let session = sent["sessionId"].as_str().expect("session id").to_owned();
    let db = env.db().await;
    // Tomorrow's date ends the default period, so "now" is inside it.
    let live_total = || async {
        let r = report(&env, "group=total").await;
        r["totals"].clone()
    };
    let t = live_total().await;
    assert_eq!(
        (
            t["sessions"].as_i64(),
            t["unanswered"].as_i64(),
            t["playerMessages"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{t}"
    );
    let r = http
        .post(env.http_url("/api/gre-admin/reply"))
        .header(AUTHORIZATION, &staff)
        .json(&json!({"sessionId": session, "message": "hi there"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = live_total().await;
    assert_eq!(
        (
            before["firstResponses"].as_i64(),
            before["replies"].as_i64(),
            before["greMessages"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{before}"
    );

    let status = |s: &'static str| {
        http.put(env.http_url(&format!("/api/gre-admin/session/{session}/status")))
            .header(AUTHORIZATION, &staff)
            .json(&json!({"status": s, "assignedGreId": "staff-7"}))
            .send()
    };
    assert_eq!(
        status("closed").await.expect("close").status(),
        StatusCode::OK
    );
    let after = live_total().await;
    for name in [
        "sessions",
        "sessionsReplied",
        "firstResponses",
        "frtMedian",
        "replies",
        "replyMedian",
        "playerMessages",
        "greMessages",
    ] {
        assert_eq!(
            after[name], before[name],
            "{name}: folded at closing as computed live"
        );
    }
    assert_eq!(after["resolved"], 1);
    let eps: i64 = db
        .query_one(
            "select count(*) from gre_relay.analytics_episodes where closed_at is not null",
            &[],
        )
        .await
        .expect("episodes")
        .get(0);
    assert_eq!(eps, 1);

    assert_eq!(
        status("active").await.expect("reopen").status(),
        StatusCode::OK
    );
    let open: (i32, i64) = db
        .query_one(
            "select episode, start_seq from gre_relay.analytics_episodes where closed_at is null",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("reopened episode");
    assert_eq!(
        open,
        (2, 2),
        "the second episode starts after the two messages"
    );
    send(json!({"message": "one more thing"}))
        .await
        .expect("send again");
    let t = live_total().await;
    assert_eq!(
        (
            t["sessions"].as_i64(),
            t["unanswered"].as_i64(),
            t["playerMessages"].as_i64()
        ),
        (Some(2), Some(1), Some(2)),
        "{t}"
    );
    assert_eq!(
        status("closed").await.expect("close again").status(),
        StatusCode::OK
    );
    let t = live_total().await;
    assert_eq!(
        (
            t["sessions"].as_i64(),
            t["resolved"].as_i64(),
            t["unanswered"].as_i64()
        ),
        (Some(2), Some(2), Some(1)),
        "{t}"
    );
    let rows: i64 = db.query_one("select count(*) from gre_relay.analytics_episodes where session_id = $1::text::uuid and closed_at is not null", &[&session]).await.expect("count").get(0);
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn staff_sockets_get_live_waiting_counters() {
    let env = TestEnv::start().await;
    let mut staff = env.staff("staff-7").await;
    let mut player = env.player(29).await;
    player
        .send_json(json!({"type": "send_message", "message": "anyone there?"}))
        .await;
    let live = wait_for_live(&mut staff, |f| f["waitingNow"] == 1).await;
    assert!(
        live["longestWaitSince"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')),
        "{live}"
    );
    let session = env
        .db()
        .await
        .query_one(
            "select id::text from gre_chat_sessions where player_id = 29",
            &[],
        )
        .await
        .expect("session")
        .get::<_, String>(0);
    staff
        .send_json(json!({"type": "send_message", "sessionId": session, "message": "yes"}))
        .await;
    let live = wait_for_live(&mut staff, |f| f["waitingNow"] == 0).await;
    assert!(live["longestWaitSince"].is_null(), "{live}");
}

async fn wait_for_live(ws: &mut WsClient, done: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let f = ws.recv().await;
            if f["type"] == "analytics_live" && done(&f) {
                return f;
            }
        }
    })
    .await
    .expect("analytics_live timed out")
}

const LONG_FIXTURE: &str = include_str!("../fixtures/analytics_long_fixture.sql");
/// 46 days and a quarter, not on day bounds: whole October from the monthly rollups, the other
/// whole days from the daily ones, the hours at both ends from the facts.
const LONG_FROM: &str = "2026-09-20T06:00:00Z";
const LONG_TO: &str = "2026-11-05T12:00:00Z";

/// The documented bound of a histogram median or p90 (docs/analytics.md, "Long periods"):
/// within 2% of the exact figure, or within 1 s.
#[track_caller]
fn within_bound(got: Option<f64>, exact: Option<f64>, what: &str) {
    match (got, exact) {
        (Some(g), Some(e)) => assert!(
            (g - e).abs() <= (0.02 * e.abs()).max(1.0) + 1e-9,
            "{what}: histogram {g}, exact {e}"
        ),
        _ => panic!("{what}: histogram {got:?}, exact {exact:?}"),
    }
}

/// Exact figures of the long fixture straight from the messages (the definitions of
/// docs/analytics.md; the fixture's sessions are never reopened, so an episode is a session):
/// (who, metric, count, avg, median, p90) with who '' for everybody.
const LONG_REFERENCE_SQL: &str = "
with s as (
  select array_agg(id order by id) as ids, array_agg(0::bigint order by id) as starts,
         array_agg(last_seq order by id) as ends
    from public.gre_chat_sessions where player_id between 5001 and 5120
), a as (
  select x.* from s, gre_relay.analytics_answers_of(s.ids, s.starts, s.ends) x
), samples (who, metric, v) as (
  select w.who, 'reply', greatest(0, extract(epoch from a.reply_at - a.created_at))::float8
    from a cross join lateral (values (''), (a.reply_gre)) w(who)
   where a.reply_seq is not null and a.created_at >= $1::text::timestamptz and a.created_at < $2::text::timestamptz
  union all
  select w.who, 'frt', greatest(0, extract(epoch from a.reply_at - a.created_at))::float8
    from a join public.gre_chat_sessions gs on gs.id = a.session_id
    cross join lateral (values (''), (a.reply_gre)) w(who)
   where a.seq = 1 and a.reply_seq is not null
     and gs.created_at >= $1::text::timestamptz and gs.created_at < $2::text::timestamptz
  union all
  select w.who, 'resolution', extract(epoch from gs.closed_at - gs.created_at)::float8
    from public.gre_chat_sessions gs cross join lateral (values (''), (gs.assigned_gre_id)) w(who)
   where gs.player_id between 5001 and 5120 and gs.status = 'closed'
     and gs.created_at >= $1::text::timestamptz and gs.created_at < $2::text::timestamptz
)
select who, metric, count(*), avg(v), percentile_cont(0.5) within group (order by v),
       percentile_cont(0.9) within group (order by v)
  from samples group by 1, 2";

#[tokio::test]
async fn long_periods_answer_from_histograms_within_the_documented_bound() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    desk_off(&db).await;
    db.batch_execute(LONG_FIXTURE).await.expect("long fixture");

    // The rollups the closings wrote equal those rebuilt from the facts (sums of seconds to
    // the microsecond: they are added in another order).
    db.batch_execute(
        "create temporary table m0 as select * from gre_relay.analytics_monthly;
         create temporary table d0 as select * from gre_relay.analytics_daily;
         create temporary table q0 as select * from gre_relay.analytics_quarters;
         select gre_relay.analytics_rollup_rebuild();",
    )
    .await
    .expect("rebuild");
    let differ = db
        .query(
            "with m0 as (select month, gre_id, metric, bin, n, round(total::numeric, 6) from m0),
                  m1 as (select month, gre_id, metric, bin, n, round(total::numeric, 6) from gre_relay.analytics_monthly),
                  d0 as (select day, gre_id, metric, bin, n, round(total::numeric, 6) from d0),
                  d1 as (select day, gre_id, metric, bin, n, round(total::numeric, 6) from gre_relay.analytics_daily),
                  q0 as (select bucket, sessions, sessions_replied, first_responses, round(frt_total::numeric, 6),
                                unanswered, resolved, round(resolution_total::numeric, 6), replies,
                                round(reply_total::numeric, 6), player_messages, gre_messages from q0),
                  q1 as (select bucket, sessions, sessions_replied, first_responses, round(frt_total::numeric, 6),
                                unanswered, resolved, round(resolution_total::numeric, 6), replies,
                                round(reply_total::numeric, 6), player_messages, gre_messages
                           from gre_relay.analytics_quarters)
             (select 'monthly' as t, m::text from m0 m except select 'monthly', m::text from m1 m)
             union all (select 'monthly rebuilt', m::text from m1 m except select 'monthly rebuilt', m::text from m0 m)
             union all (select 'daily', d::text from d0 d except select 'daily', d::text from d1 d)
             union all (select 'daily rebuilt', d::text from d1 d except select 'daily rebuilt', d::text from d0 d)
             union all (select 'quarters', q::text from q0 q except select 'quarters', q::text from q1 q)
             union all (select 'quarters rebuilt', q::text from q1 q except select 'quarters rebuilt', q::text from q0 q)
             order by 1, 2 limit 20",
            &[],
        )
        .await
        .expect("compare rollups");
    let differ: Vec<(String, String)> = differ.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        differ.is_empty(),
        "folded and rebuilt rollups differ: {differ:#?}"
    );
    let sizes = db
        .query_one(
            "select (select count(*) from m0), (select count(*) from d0), (select count(*) from q0)",
            &[],
        )
        .await
        .expect("sizes");
    assert!(
        (0..3).all(|i| sizes.get::<_, i64>(i) > 0),
        "rollups written"
    );
    // The bins written out in the SQL are gre_relay.analytics_bin()'s: a bin holding one
    // sample has that sample as its total.
    let off: i64 = db
        .query_one(
            "select count(*) from gre_relay.analytics_daily
              where metric in ('frt', 'resolution', 'reply') and n = 1
                and gre_relay.analytics_bin(total) <> bin",
            &[],
        )
        .await
        .expect("bins")
        .get(0);
    assert_eq!(off, 0, "bins differ from gre_relay.analytics_bin()");

    let mut exact: HashMap<(String, String), (i64, f64, f64, f64)> = HashMap::new();
    for r in db
        .query(LONG_REFERENCE_SQL, &[&LONG_FROM, &LONG_TO])
        .await
        .expect("reference")
    {
        exact.insert(
            (r.get(0), r.get(1)),
            (r.get(2), r.get(3), r.get(4), r.get(5)),
        );
    }
    let reference = |who: &str, metric: &str| {
        *exact
            .get(&(who.to_owned(), metric.to_owned()))
            .unwrap_or_else(|| panic!("no reference for {who} {metric}"))
    };

    // The API says which path answered; total and gre from the histograms.
    let period = format!("from={LONG_FROM}&to={LONG_TO}");
    for group in ["total", "gre"] {
        let body = report(&env, &format!("{period}&group={group}&totals=false")).await;
        let rows = body["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), if group == "total" { 1 } else { 3 }, "{body}");
        for row in rows {
            assert_eq!(row["percentiles"], "histogram", "{row}");
            let who = if group == "total" {
                ""
            } else {
                row["key"].as_str().expect("key")
            };
            for (metric, count, avg, median, p90) in [
                ("frt", "firstResponses", "frtAvg", "frtMedian", "frtP90"),
                ("reply", "replies", "replyAvg", "replyMedian", "replyP90"),
            ] {
                let (n, a, m, p) = reference(who, metric);
                let what = format!("{group} {who} {metric}");
                assert_eq!(row[count].as_i64(), Some(n), "{what} count");
                let got_avg = row[avg].as_f64().unwrap_or(f64::NAN);
                assert!((got_avg - a).abs() < 1e-6, "{what} avg {got_avg} != {a}");
                within_bound(row[median].as_f64(), Some(m), &format!("{what} median"));
                within_bound(row[p90].as_f64(), Some(p), &format!("{what} p90"));
            }
            // Resolution counts the closed sessions, by assignee under gre.
            let (n, a, m, p) = reference(who, "resolution");
            assert_eq!(row["resolved"].as_i64(), Some(n), "{who} resolved");
            let got_avg = row["resolutionAvg"].as_f64().unwrap_or(f64::NAN);
            assert!((got_avg - a).abs() < 1e-6, "{who} resolution avg");
            within_bound(
                row["resolutionMedian"].as_f64(),
                Some(m),
                "resolution median",
            );
            within_bound(row["resolutionP90"].as_f64(), Some(p), "resolution p90");
        }
        if group == "total" {
            let t = &rows[0];
            // 120 sessions, the last 10 open (live, their players waiting after a first
            // answer): all were answered, none is unanswered; 110 closed.
            assert_eq!(t["sessions"], 120, "{t}");
            assert_eq!(t["sessionsReplied"], 120, "{t}");
            assert_eq!(t["unanswered"], 0, "{t}");
            assert_eq!(t["playerMessages"], 2 * 120 + 10, "{t}");
            assert_eq!(t["greMessages"], 120 + 110, "{t}");
        }
    }

    // The same period cut into pieces of at most 31 days (the exact path) gives the same counts.
    let pieces = [
        (LONG_FROM, "2026-10-15T00:00:00Z"),
        ("2026-10-15T00:00:00Z", LONG_TO),
    ];
    let mut sessions = 0;
    let mut replies = 0;
    for (from, to) in pieces {
        let body = report(&env, &format!("from={from}&to={to}&group=total")).await;
        assert_eq!(body["rows"][0]["percentiles"], "exact", "{body}");
        sessions += body["rows"][0]["sessions"].as_i64().unwrap_or(-1);
        replies += body["rows"][0]["replies"].as_i64().unwrap_or(-1);
    }
    assert_eq!(sessions, 120);
    assert_eq!(replies, reference("", "reply").0);

    // By day over a long period: counts and averages, no medians.
    let days = report(&env, "from=2026-09-20&to=2026-11-06&group=day&totals=false").await;
    let rows = days["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 47, "every day");
    assert!(rows.iter().all(|r| r["percentiles"] == "none"
        && r["frtMedian"].is_null()
        && r["replyP90"].is_null()));
    let per_day: i64 = rows.iter().filter_map(|r| r["sessions"].as_i64()).sum();
    assert_eq!(per_day, 120);
    let per_day_replies: i64 = rows.iter().filter_map(|r| r["replies"].as_i64()).sum();
    assert_eq!(per_day_replies, reference("", "reply").0);
}
