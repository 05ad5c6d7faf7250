//! The audit log: idempotent inserts keyed by the producer, and filtered, cursor-paginated
//! reads newest first.
//!
//! The cursor is the (time, id) of the last record of a page; the next page continues strictly
//! after it in (time desc, id desc) order, so a walk sees every row once even while new rows
//! arrive (new rows are newer and land before the cursor, not after it).

use sqlx::Row;
use sqlx::types::Json;

use crate::error::from_sqlx;
use crate::{
    AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT, AuditPage, AuditQuery, AuditRecord, MetadataError,
    MetadataStore, NewAuditRecord, with_pool,
};

const AUDIT_COLUMNS: &str = "id, time_ms, actor, action, resource, tenant, app, env, outcome, \
     reason, revision, request_id, source_ip, user_agent, details";

/// Version tag of the cursor format.
const CURSOR_PREFIX: &str = "c1.";

/// Records per INSERT statement: 15 bound values each stays well under SQLite's limit of
/// 32,766 variables per statement (and PostgreSQL's 65,535).
const AUDIT_INSERT_CHUNK: usize = 1000;

/// A value bound to a dynamically built query.
enum Bind {
    Int(i64),
    Text(String),
}

fn encode_cursor(time_ms: i64, id: i64) -> String {
    format!("{CURSOR_PREFIX}{time_ms}.{id}")
}

fn decode_cursor(cursor: &str) -> Result<(i64, i64), MetadataError> {
    let malformed = || MetadataError::Invalid("cursor is malformed".into());
    let rest = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(malformed)?;
    let (time, id) = rest.split_once('.').ok_or_else(malformed)?;
    let time = time.parse::<i64>().map_err(|_| malformed())?;
    let id = id.parse::<i64>().map_err(|_| malformed())?;
    Ok((time, id))
}

/// Builds the WHERE conditions and binds of a query, numbering placeholders from 1.
struct Filter {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    fn new() -> Self {
        Filter {
            conditions: Vec::new(),
            binds: Vec::new(),
        }
    }

    /// Adds a bind and returns its placeholder.
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Bind::Text(s.to_owned()))
    }

    /// The condition for records under `scope`, or `None` if it grants everything; an unusable
    /// scope (empty parts, more than three) grants nothing.
    fn scope_condition(&mut self, scope: &str) -> Option<String> {
        if scope == "*" {
            return None;
        }
        let parts: Vec<&str> = scope.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Some("1 = 0".into());
        }
        let columns = ["tenant", "app", "env"];
        let terms: Vec<String> = parts
            .iter()
            .zip(columns)
            .map(|(part, column)| format!("{column} = {}", self.text(part)))
            .collect();
        Some(format!("({})", terms.join(" AND ")))
    }
}

impl MetadataStore {
    /// Inserts records idempotently in one transaction: a record whose key exists is
    /// skipped. Returns how many were new.
    pub async fn insert_audit(&self, records: &[NewAuditRecord]) -> Result<u64, MetadataError> {
        if records.is_empty() {
            return Ok(0);
        }
        with_pool!(self, |pool, d| {
            let res: Result<u64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                let mut inserted = 0;
                // Multi-row inserts: one statement per chunk, not per record (the leader
                // drains thousands of records a second under write load).
                for chunk in records.chunks(AUDIT_INSERT_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO audit_log (record_key, time_ms, actor, action, resource, \
                         tenant, app, env, outcome, reason, revision, request_id, source_ip, \
                         user_agent, details) ",
                    );
                    insert.push_values(chunk, |mut row, r| {
                        row.push_bind(&r.key)
                            .push_bind(r.time_ms)
                            .push_bind(&r.actor)
                            .push_bind(&r.action)
                            .push_bind(&r.resource)
                            .push_bind(&r.tenant)
                            .push_bind(&r.app)
                            .push_bind(&r.env)
                            .push_bind(&r.outcome)
                            .push_bind(&r.reason)
                            .push_bind(r.revision)
                            .push_bind(&r.request_id)
                            .push_bind(&r.source_ip)
                            .push_bind(&r.user_agent)
                            .push_bind(Json(&r.details));
                    });
                    insert.push(" ON CONFLICT (record_key) DO NOTHING");
                    inserted += insert.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }
            .await;
            res.map_err(|e| from_sqlx("inserting audit records", e))
        })
    }

    /// One page of matching records, newest first (time desc, id desc).
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<AuditPage, MetadataError> {
        let limit = q
            .limit
            .unwrap_or(AUDIT_DEFAULT_LIMIT)
            .clamp(1, AUDIT_MAX_LIMIT);
        let mut f = Filter::new();
        if let Some(tenant) = &q.tenant {
            let p = f.text(tenant);
            f.conditions.push(format!("tenant = {p}"));
        }
        if let Some(actor) = &q.actor {
            let p = f.text(actor);
            f.conditions.push(format!("actor = {p}"));
        }
        if let Some(action) = &q.action {
            let p = f.text(action);
            f.conditions.push(format!("action = {p}"));
        }
        if let Some(since) = q.since_ms {
            let p = f.bind(Bind::Int(since));
            f.conditions.push(format!("time_ms >= {p}"));
        }
        if let Some(until) = q.until_ms {
            let p = f.bind(Bind::Int(until));
            f.conditions.push(format!("time_ms <= {p}"));
        }
        if let Some(cursor) = &q.cursor {
            let (time, id) = decode_cursor(cursor)?;
            let t = f.bind(Bind::Int(time));
            let i = f.bind(Bind::Int(id));
            f.conditions
                .push(format!("(time_ms < {t} OR (time_ms = {t} AND id < {i}))"));
        }
        if let Some(scopes) = &q.visible_scopes {
            let mut any = Vec::new();
            let mut everything = false;
            for scope in scopes {
                match f.scope_condition(scope) {
                    None => everything = true,
                    Some(c) => any.push(c),
                }
            }
            if !everything {
                if any.is_empty() {
                    return Ok(AuditPage {
                        records: Vec::new(),
                        next_cursor: None,
                    });
                }
                f.conditions.push(format!("({})", any.join(" OR ")));
            }
        }
        let limit_param = f.bind(Bind::Int(i64::from(limit) + 1));
        let where_clause = if f.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", f.conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log {where_clause} \
             ORDER BY time_ms DESC, id DESC LIMIT {limit_param}"
        );
        let mut records = with_pool!(self, |pool, _d| {
            let res: Result<Vec<AuditRecord>, sqlx::Error> = async {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for b in f.binds {
                    query = match b {
                        Bind::Int(v) => query.bind(v),
                        Bind::Text(s) => query.bind(s),
                    };
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditRecord {
                            id: r.try_get("id")?,
                            time_ms: r.try_get("time_ms")?,
                            actor: r.try_get("actor")?,
                            action: r.try_get("action")?,
                            resource: r.try_get("resource")?,
                            tenant: r.try_get("tenant")?,
                            app: r.try_get("app")?,
                            env: r.try_get("env")?,
                            outcome: r.try_get("outcome")?,
                            reason: r.try_get("reason")?,
                            revision: r.try_get("revision")?,
                            request_id: r.try_get("request_id")?,
                            source_ip: r.try_get("source_ip")?,
                            user_agent: r.try_get("user_agent")?,
                            details: r.try_get::<Json<serde_json::Value>, _>("details")?.0,
                        })
                    })
                    .collect()
            }
            .await;
            res.map_err(|e| from_sqlx("querying audit records", e))
        })?;
        let limit = limit as usize;
        let next_cursor = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|r| encode_cursor(r.time_ms, r.id))
        } else {
            None
        };
        Ok(AuditPage {
            records,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = encode_cursor(-5, 42);
        assert_eq!(decode_cursor(&c), Ok((-5, 42)));
        for bad in ["", "c1.", "c1.1", "c1.x.2", "c2.1.2", "1.2", "c1.1.2.3"] {
            assert!(
                matches!(decode_cursor(bad), Err(MetadataError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn scope_conditions() {
        let mut f = Filter::new();
        assert_eq!(f.scope_condition("*"), None);
        assert_eq!(f.scope_condition("t").as_deref(), Some("(tenant = $1)"));
        assert_eq!(
            f.scope_condition("t/a/e").as_deref(),
            Some("(tenant = $2 AND app = $3 AND env = $4)")
        );
        assert_eq!(f.scope_condition("t//e").as_deref(), Some("1 = 0"));
        assert_eq!(f.scope_condition("a/b/c/d").as_deref(), Some("1 = 0"));
    }
}
