//! `GET /api/gre-admin/analytics` (staff only): the chat analytics of a period, grouped by
//! `total`, `day`, `hour_of_week`, `gre` or `first_response` (its distribution), as JSON or as
//! CSV (`format=csv`, or `Accept: text/csv`). The figures are the database's
//! (`public.gre_chat_analytics()`, definitions in docs/analytics.md); this file checks the
//! parameters, paces the callers and formats.
//!
//! Must not touch: the hub and the LISTEN connection.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;

use super::error::ApiError;
use super::response::{full, json_response, Body};
use super::rest::{authenticate, query_params, require_staff, take_rest_budget};
use crate::chat::store_error;
use crate::db::{AnalyticsRow, LiveWaits, StoreError};
use crate::protocol::ErrorCode;
use crate::state::AppState;

/// Reports computed at once by this relay. A report holds a pooled connection for up to about
/// 0.2 s of database CPU (a year from the rollups, docs/performance.md); two at a time leave the rest of the pool
/// (`database.pool_size`, 16 by default) to the chat.
const CONCURRENT_REPORTS: usize = 2;
/// How long a report waits for its turn before the answer is 503.
const REPORT_QUEUE_WAIT: Duration = Duration::from_secs(10);

fn report_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(CONCURRENT_REPORTS))
}

const GROUPS: [&str; 5] = ["total", "day", "hour_of_week", "gre", "first_response"];
/// The CSV columns, in order; the JSON rows use the same names.
const COLUMNS: [&str; 19] = [
    "key",
    "sessions",
    "sessionsReplied",
    "firstResponses",
    "unanswered",
    "frtAvg",
    "frtMedian",
    "frtP90",
    "resolved",
    "resolutionAvg",
    "resolutionMedian",
    "resolutionP90",
    "replies",
    "replyAvg",
    "replyMedian",
    "replyP90",
    "playerMessages",
    "greMessages",
    "percentiles",
];

/// One group's figures on the wire (JSON); CSV has the same columns ([`COLUMNS`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RowBody<'a> {
    key: &'a str,
    sessions: i64,
    sessions_replied: i64,
    first_responses: i64,
    unanswered: i64,
    frt_avg: Option<f64>,
    frt_median: Option<f64>,
    frt_p90: Option<f64>,
    resolved: i64,
    resolution_avg: Option<f64>,
    resolution_median: Option<f64>,
    resolution_p90: Option<f64>,
    replies: i64,
    reply_avg: Option<f64>,
    reply_median: Option<f64>,
    reply_p90: Option<f64>,
    player_messages: i64,
    gre_messages: i64,
    /// `exact`, `histogram` or `none` (docs/analytics.md, "Long periods").
    percentiles: &'a str,
}

impl<'a> From<&'a AnalyticsRow> for RowBody<'a> {
    fn from(r: &'a AnalyticsRow) -> Self {
        RowBody {
            key: &r.key,
            sessions: r.sessions,
            sessions_replied: r.sessions_replied,
            first_responses: r.first_responses,
            unanswered: r.unanswered,
            frt_avg: r.frt_avg,
            frt_median: r.frt_median,
            frt_p90: r.frt_p90,
            resolved: r.resolved,
            resolution_avg: r.resolution_avg,
            resolution_median: r.resolution_median,
            resolution_p90: r.resolution_p90,
            replies: r.replies,
            reply_avg: r.reply_avg,
            reply_median: r.reply_median,
            reply_p90: r.reply_p90,
            player_messages: r.player_messages,
            gre_messages: r.gre_messages,
            percentiles: &r.percentiles,
        }
    }
}

impl RowBody<'_> {
    /// The CSV record: numbers as Rust prints them (parse back to the same f64), empty for null.
    fn record(&self) -> [String; 19] {
        let n = |v: i64| v.to_string();
        let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        [
            self.key.to_owned(),
            n(self.sessions),
            n(self.sessions_replied),
            n(self.first_responses),
            n(self.unanswered),
            f(self.frt_avg),
            f(self.frt_median),
            f(self.frt_p90),
            n(self.resolved),
            f(self.resolution_avg),
            f(self.resolution_median),
            f(self.resolution_p90),
            n(self.replies),
            f(self.reply_avg),
            f(self.reply_median),
            f(self.reply_p90),
            n(self.player_messages),
            n(self.gre_messages),
            self.percentiles.to_owned(),
        ]
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LiveBody<'a> {
    waiting_now: i64,
    longest_wait_since: Option<&'a str>,
    longest_wait_seconds: Option<f64>,
}

impl<'a> From<&'a LiveWaits> for LiveBody<'a> {
    fn from(l: &'a LiveWaits) -> Self {
        LiveBody {
            waiting_now: l.waiting_now,
            longest_wait_since: l.longest_wait_since.as_deref(),
            longest_wait_seconds: l.longest_wait_seconds,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportBody<'a> {
    from: &'a str,
    to: &'a str,
    group: &'a str,
    tz: &'a str,
    totals: Option<RowBody<'a>>,
    rows: Vec<RowBody<'a>>,
    live: LiveBody<'a>,
}

/// The parameters, checked.
#[derive(Debug, PartialEq)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    group: String,
    tz: String,
    csv: bool,
    /// Whether the JSON carries the period's totals (`totals=false` leaves them out: a second
    /// report the caller may already have).
    totals: bool,
}

/// Answers the endpoint. Staff only (403 for a player); 400 for a bad parameter.
pub(super) async fn handle(req: Request<Incoming>, app: Arc<AppState>) -> Response<Body> {
    answer(req, &app)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn answer(req: Request<Incoming>, app: &AppState) -> Result<Response<Body>, ApiError> {
    let identity = authenticate(&req, app).await?;
    require_staff(&identity)?;
    // Reports cost the database far more than a page of messages: paced per caller like writes.
    take_rest_budget(app, &identity)?;
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let params = parse_params(&query_params(&req), accept)?;
    let _slot = match tokio::time::timeout(REPORT_QUEUE_WAIT, report_slots().acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "too many reports are being computed; try again shortly",
            ))
        }
    };
    let store = &app.deps.store;
    let report = store
        .analytics(
            params.from.as_deref(),
            params.to.as_deref(),
            &params.group,
            &params.tz,
        )
        .await
        .map_err(report_error)?;
    let rows: Vec<RowBody> = report.rows.iter().map(RowBody::from).collect();
    if params.csv {
        return csv_response(&params, &report.from, &report.to, &rows);
    }
    // The totals of the period ride along with every grouping (the same query, group total).
    let totals = if params.group == "total" || !params.totals {
        None
    } else {
        Some(
            store
                .analytics(
                    Some(report.from.as_str()),
                    Some(report.to.as_str()),
                    "total",
                    &params.tz,
                )
                .await
                .map_err(report_error)?,
        )
    };
    let live = store.analytics_live().await.map_err(store_error)?;
    let body = ReportBody {
        from: &report.from,
        to: &report.to,
        group: &params.group,
        tz: &params.tz,
        totals: match (&totals, params.group.as_str()) {
            (Some(t), _) => t.rows.first().map(RowBody::from),
            (None, "total") => report.rows.first().map(RowBody::from),
            (None, _) => None,
        },
        rows,
        live: LiveBody::from(&live),
    };
    let value = serde_json::to_value(&body)
        .map_err(|_| ApiError::of(ErrorCode::Internal, "could not encode the report"))?;
    Ok(json_response(StatusCode::OK, &value))
}

fn parse_params(query: &HashMap<String, String>, accept: &str) -> Result<Params, ApiError> {
    let get = |name: &str| {
        query
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let from = get("from");
    let to = get("to");
    for bound in [&from, &to].into_iter().flatten() {
        if !is_date(bound) && !is_rfc3339(bound) {
            return Err(ApiError::bad_request(
                "from and to must be dates (YYYY-MM-DD) or RFC 3339 times",
            ));
        }
    }
    let group = get("group").unwrap_or_else(|| "day".to_owned());
    if !GROUPS.contains(&group.as_str()) {
        return Err(ApiError::bad_request(
            "group must be total, day, hour_of_week, gre or first_response",
        ));
    }
    let tz = get("tz").unwrap_or_else(|| "UTC".to_owned());
    // An IANA name (Area/City, UTC, Etc/GMT+5): the database says whether it knows it.
    if tz.len() > 64
        || !tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
    {
        return Err(ApiError::bad_request("tz must be a time zone name"));
    }
    let totals = match get("totals").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::bad_request("totals must be true or false")),
    };
    let csv = match get("format").as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::bad_request("format must be json or csv")),
        None => accept
            .split(',')
            .any(|t| t.split(';').next().unwrap_or("").trim() == "text/csv"),
    };
    Ok(Params {
        from,
        to,
        group,
        tz,
        csv,
        totals,
    })
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD` (the database checks the calendar).
fn is_date(s: &str) -> bool {
    let p: Vec<&str> = s.split('-').collect();
    s.len() == 10 && p.len() == 3 && p[0].len() == 4 && p.iter().all(|x| digits(x))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let (Some(date), Some(rest)) = (s.get(..10), s.get(10..)) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else {
        return false;
    };
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => return false,
    };
    let time_ok = {
        let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
        let p: Vec<&str> = hms.split(':').collect();
        p.len() == 3 && p.iter().all(|x| x.len() == 2 && digits(x)) && digits(frac)
    };
    let offset_ok = offset.eq_ignore_ascii_case("z") || {
        let o = &offset[1..];
        o.len() == 5 && o.as_bytes()[2] == b':' && digits(&o[..2]) && digits(&o[3..])
    };
    is_date(date) && time_ok && offset_ok
}

/// What the database said about the parameters, in plain words; anything else is a storage error.
fn report_error(e: StoreError) -> ApiError {
    if let StoreError::Db(db) = &e {
        let code = db.code();
        if code == Some(&SqlState::INVALID_PARAMETER_VALUE) {
            return ApiError::bad_request(
                "the period must have from before to and span at most 400 days, \
                 and tz must be a known time zone",
            );
        }
        if code == Some(&SqlState::INVALID_DATETIME_FORMAT)
            || code == Some(&SqlState::DATETIME_FIELD_OVERFLOW)
        {
            return ApiError::bad_request(
                "from and to must be dates (YYYY-MM-DD) or RFC 3339 times",
            );
        }
    }
    store_error(e).into()
}

fn csv_response(
    params: &Params,
    from: &str,
    to: &str,
    rows: &[RowBody],
) -> Result<Response<Body>, ApiError> {
    let internal = || ApiError::of(ErrorCode::Internal, "could not write the CSV");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(|_| internal())?;
    for r in rows {
        w.write_record(r.record()).map_err(|_| internal())?;
    }
    let bytes = w.into_inner().map_err(|_| internal())?;
    let mut res = Response::new(full(bytes));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    // Only digits, dashes and the group name: nothing a header must escape.
    let day = |t: &str| t.get(..10).unwrap_or("").to_owned();
    let name = format!(
        "attachment; filename=\"gre-analytics-{}-{}-{}.csv\"",
        params.group,
        day(from),
        day(to)
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_have_defaults_and_are_checked() {
        let p = parse_params(&q(&[]), "").expect("defaults");
        assert_eq!(
            p,
            Params {
                from: None,
                to: None,
                group: "day".into(),
                tz: "UTC".into(),
                csv: false,
                totals: true,
            }
        );
        let p = parse_params(
            &q(&[
                ("from", "2026-11-02"),
                ("to", "2026-11-04T00:00:00+05:30"),
                ("group", "gre"),
                ("tz", "Asia/Kolkata"),
            ]),
            "text/csv",
        )
        .expect("valid");
        assert!(p.csv);
        assert_eq!(p.group, "gre");
        assert!(parse_params(&q(&[("format", "json")]), "text/csv")
            .map(|p| !p.csv)
            .unwrap_or(false));
        for bad in [
            q(&[("group", "week")]),
            q(&[("from", "yesterday")]),
            q(&[("to", "2026-11-04 00:00")]),
            q(&[("tz", "UTC'; drop table x")]),
            q(&[("format", "xml")]),
            q(&[("totals", "no")]),
        ] {
            assert!(parse_params(&bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_are_dates_or_rfc3339() {
        assert!(is_date("2026-11-02"));
        assert!(!is_date("2026-1-02"));
        assert!(is_rfc3339("2026-11-02T10:00:00Z"));
        assert!(is_rfc3339("2026-11-02T10:00:00.123456+05:30"));
        assert!(is_rfc3339("2026-11-02 10:00:00-04:00"));
        assert!(!is_rfc3339("2026-11-02T10:00:00"));
        assert!(!is_rfc3339("2026-11-02T10:00Z"));
        assert!(!is_rfc3339("2026-11-02"));
    }

    #[test]
    fn csv_records_print_numbers_that_parse_back() {
        let row = AnalyticsRow {
            key: "2026-11-02".into(),
            sessions: 5,
            sessions_replied: 4,
            first_responses: 4,
            unanswered: 1,
            frt_avg: Some(82.5),
            frt_median: Some(90.0),
            frt_p90: None,
            resolved: 3,
            resolution_avg: Some(700.0),
            resolution_median: Some(600.0),
            resolution_p90: Some(1080.0),
            replies: 6,
            reply_avg: Some(70.0),
            reply_median: Some(60.0),
            reply_p90: Some(120.0),
            player_messages: 8,
            gre_messages: 6,
            percentiles: "exact".into(),
        };
        let rec = RowBody::from(&row).record();
        assert_eq!(rec[5].parse::<f64>().ok(), Some(82.5));
        assert_eq!(rec[6].parse::<f64>().ok(), Some(90.0));
        assert_eq!(rec[7], "");
        assert_eq!(rec[18], "exact");
        assert_eq!(rec.len(), COLUMNS.len());
    }
}
