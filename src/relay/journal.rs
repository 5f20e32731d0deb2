//! The journal of calls to external systems: one row per HTTP call, with its outcome and
//! excerpts of what went and came back — the reason behind every retry.

use diesel::prelude::*;
use serde::Serialize;

use crate::store::schema::api_calls;
use crate::store::{now_ms, Conn};

/// Longest excerpt kept of a request or an answer.
pub const EXCERPT: usize = 2000;

/// The first [`EXCERPT`] bytes (on a char boundary), with a marker when cut.
pub fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT {
        return s.to_string();
    }
    let mut end = EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[derive(Debug, Clone, Default)]
pub struct Call {
    pub target: String,
    pub endpoint: String,
    pub at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    /// ok, item_errors, retry, wait, fatal
    pub outcome: String,
    pub messages: i32,
    pub error: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
}

pub fn record_call(conn: &mut Conn, c: &Call) -> QueryResult<i64> {
    crate::metrics::api_call(&c.target, &c.endpoint, &c.outcome, c.duration_ms);
    let id: i32 = diesel::insert_into(api_calls::table)
        .values((
            api_calls::target.eq(&c.target),
            api_calls::endpoint.eq(&c.endpoint),
            api_calls::at.eq(if c.at == 0 { now_ms() } else { c.at }),
            api_calls::duration_ms.eq(c.duration_ms),
            api_calls::http_status.eq(c.http_status),
            api_calls::outcome.eq(&c.outcome),
            api_calls::messages.eq(c.messages),
            api_calls::error.eq(c.error.as_deref().map(excerpt)),
            api_calls::request.eq(c.request.as_deref().map(excerpt)),
            api_calls::response.eq(c.response.as_deref().map(excerpt)),
        ))
        .returning(api_calls::id)
        .get_result(conn)?;
    Ok(id as i64)
}

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct CallRow {
    pub id: i32,
    pub target: String,
    pub endpoint: String,
    pub at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub messages: i32,
    pub error: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
}

/// Newest first, optionally for one target and below an id (keyset pagination).
pub fn list_calls(
    conn: &mut Conn,
    target: Option<&str>,
    before_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<CallRow>> {
    let mut q = api_calls::table.into_boxed();
    if let Some(t) = target {
        q = q.filter(api_calls::target.eq(t.to_string()));
    }
    if let Some(b) = before_id {
        q = q.filter(api_calls::id.lt(b));
    }
    q.order(api_calls::id.desc())
        .limit(limit.clamp(1, 1000))
        .load(conn)
}

pub fn get_call(conn: &mut Conn, id: i64) -> QueryResult<Option<CallRow>> {
    api_calls::table.find(id as i32).first(conn).optional()
}

/// Calls of a target whose request excerpt names one of `needles` as a JSON string (`"…"`):
/// the calls a message took part in, as far as the kept excerpts tell. Newest first.
pub fn calls_mentioning(
    conn: &mut Conn,
    target: &str,
    needles: &[String],
    limit: i64,
) -> QueryResult<Vec<CallRow>> {
    let needles: Vec<&String> = needles.iter().filter(|n| n.len() >= 3).collect();
    if needles.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = api_calls::table
        .filter(api_calls::target.eq(target.to_string()))
        .into_boxed();
    let mut cond: Option<
        Box<
            dyn BoxableExpression<
                api_calls::table,
                crate::store::Backend,
                SqlType = diesel::sql_types::Nullable<diesel::sql_types::Bool>,
            >,
        >,
    > = None;
    for n in needles {
        let pattern =
            crate::store::like_contains(&serde_json::Value::String(n.clone()).to_string());
        let one = Box::new(api_calls::request.like(pattern).escape('\\'));
        cond = Some(match cond {
            None => one,
            Some(c) => Box::new(c.or(one)),
        });
    }
    if let Some(c) = cond {
        q = q.filter(c);
    }
    q.order(api_calls::id.desc())
        .limit(limit.clamp(1, 1000))
        .load(conn)
}
