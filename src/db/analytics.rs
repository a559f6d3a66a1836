//! Queries of the chat analytics (docs/analytics.md): a report from
//! `public.gre_chat_analytics()` and the live waiting figures from
//! `public.gre_chat_analytics_live()` (triggers/90_analytics.sql). The SQL computes every figure;
//! this file only carries them.

use super::{Store, StoreError};

/// One row of a report: a group's key and its figures. Times are in seconds; a figure over no
/// sample is `None`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnalyticsRow {
    pub(crate) key: String,
    pub(crate) sessions: i64,
    pub(crate) sessions_replied: i64,
    pub(crate) first_responses: i64,
    pub(crate) unanswered: i64,
    pub(crate) frt_avg: Option<f64>,
    pub(crate) frt_median: Option<f64>,
    pub(crate) frt_p90: Option<f64>,
    pub(crate) resolved: i64,
    pub(crate) resolution_avg: Option<f64>,
    pub(crate) resolution_median: Option<f64>,
    pub(crate) resolution_p90: Option<f64>,
    pub(crate) replies: i64,
    pub(crate) reply_avg: Option<f64>,
    pub(crate) reply_median: Option<f64>,
    pub(crate) reply_p90: Option<f64>,
    pub(crate) player_messages: i64,
    pub(crate) gre_messages: i64,
    /// Which path computed the medians and p90: `exact` (every sample sorted), `histogram`
    /// (2% bins of the rollups, periods over 31 days) or `none` (not computed: by day or hour
    /// of the week over more than 31 days). docs/analytics.md, "Long periods".
    pub(crate) percentiles: String,
}

/// A report: the period it covers (RFC 3339, after defaults and dates were resolved) and its rows.
#[derive(Debug, Clone)]
pub(crate) struct AnalyticsReport {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) rows: Vec<AnalyticsRow>,
}

/// Players waiting for an answer now, and since when the longest has waited.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveWaits {
    pub(crate) waiting_now: i64,
    /// RFC 3339; `None` when nobody waits.
    pub(crate) longest_wait_since: Option<String>,
    pub(crate) longest_wait_seconds: Option<f64>,
}

/// A bound of the period: a date (`YYYY-MM-DD`, midnight in the report's time zone) or a time
/// with its offset (RFC 3339). The caller checks the syntax; PostgreSQL converts.
///
/// `$1`, `$2`: from and to (text or null); `$3`: the group; `$4`: the time zone. Without `to`,
/// the period ends at the next local midnight; without `from`, it starts 30 days before `to`.
const REPORT_SQL: &str = "\
with t as (
  select case when $2::text is null
              then (date_trunc('day', now() at time zone $4::text) + interval '1 day') at time zone $4::text
              when $2::text ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
              then $2::text::date::timestamp at time zone $4::text
              else $2::text::timestamptz end as t_to
), p as (
  select case when $1::text is null then t.t_to - interval '30 days'
              when $1::text ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
              then $1::text::date::timestamp at time zone $4::text
              else $1::text::timestamptz end as t_from,
         t.t_to
    from t
)
select gre_relay.ts_json(p.t_from), gre_relay.ts_json(p.t_to),
       a.key, a.sessions, a.sessions_replied, a.first_responses, a.unanswered,
       a.frt_avg, a.frt_median, a.frt_p90, a.resolved, a.resolution_avg, a.resolution_median,
       a.resolution_p90, a.replies, a.reply_avg, a.reply_median, a.reply_p90,
       a.player_messages, a.gre_messages, a.percentiles
  from p
  left join lateral public.gre_chat_analytics(p.t_from, p.t_to, $3::text, $4::text) a on true";

impl Store {
    /// A report over `[from, to)` grouped by `group` (`total`, `day`, `hour_of_week`, `gre`,
    /// `first_response`) in
    /// time zone `tz`. A bad period or time zone is refused by the database with SQLSTATE 22023
    /// (invalid_parameter_value), an unreadable time with 22007/22008.
    pub(crate) async fn analytics(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        group: &str,
        tz: &str,
    ) -> Result<AnalyticsReport, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(REPORT_SQL).await?;
        let rows = client.query(&stmt, &[&from, &to, &group, &tz]).await?;
        let mut report = AnalyticsReport {
            from: String::new(),
            to: String::new(),
            rows: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            report.from = row.try_get(0)?;
            report.to = row.try_get(1)?;
            // The left join gives one row of nulls when the function returns none.
            let Some(key) = row.try_get::<_, Option<String>>(2)? else {
                continue;
            };
            report.rows.push(AnalyticsRow {
                key,
                sessions: row.try_get(3)?,
                sessions_replied: row.try_get(4)?,
                first_responses: row.try_get(5)?,
                unanswered: row.try_get(6)?,
                frt_avg: row.try_get(7)?,
                frt_median: row.try_get(8)?,
                frt_p90: row.try_get(9)?,
                resolved: row.try_get(10)?,
                resolution_avg: row.try_get(11)?,
                resolution_median: row.try_get(12)?,
                resolution_p90: row.try_get(13)?,
                replies: row.try_get(14)?,
                reply_avg: row.try_get(15)?,
                reply_median: row.try_get(16)?,
                reply_p90: row.try_get(17)?,
                player_messages: row.try_get(18)?,
                gre_messages: row.try_get(19)?,
                percentiles: row.try_get(20)?,
            });
        }
        Ok(report)
    }

    /// Waiting now and the longest current wait.
    pub(crate) async fn analytics_live(&self) -> Result<LiveWaits, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "select waiting_now, gre_relay.ts_json(longest_wait_since), longest_wait_seconds \
                 from public.gre_chat_analytics_live()",
            )
            .await?;
        let row = client.query_one(&stmt, &[]).await?;
        Ok(LiveWaits {
            waiting_now: row.try_get(0)?,
            longest_wait_since: row.try_get(1)?,
            longest_wait_seconds: row.try_get(2)?,
        })
    }
}
