//! Dashboard users: roles, argon2 password hashes, lockout after repeated failures, browser
//! sessions (only a SHA-256 of the cookie is stored) and the audit log of every action.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::schema::{audit_log, users, web_sessions};
use crate::store::{now_ms, Conn};

/// Failed logins in a row that lock an account.
pub const LOCK_AFTER: i32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MS: i64 = 15 * 60 * 1000;
/// Life of a dashboard session.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            o => Err(format!("unknown role {o:?} (admin, operator or viewer)")),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i32,
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub failed_logins: i32,
    pub locked_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

/// A signed-in user as the dashboard sees it.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: i32,
    pub name: String,
    pub role: Role,
    pub csrf: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Validate a user name: 1–64 letters, digits, `._-@`.
pub fn check_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "invalid user name {name:?}: 1–64 letters, digits, '.', '_', '-', '@'"
        )))
    }
}

/// Create a user, or set the role and password of an existing one. Returns true when created.
pub fn upsert(conn: &mut Conn, name: &str, role: Role, password: &str) -> Result<bool, UserError> {
    check_name(name)?;
    if password.chars().count() < 8 {
        return Err(UserError::Invalid(
            "the password must have at least 8 characters".into(),
        ));
    }
    let hash = crate::exchange::hash_password(password);
    let now = now_ms();
    conn.immediate_transaction(|c| {
        let existing: Option<i32> = users::table
            .filter(users::name.eq(name))
            .select(users::id)
            .first(c)
            .optional()?;
        match existing {
            Some(id) => {
                diesel::update(users::table.find(id))
                    .set((
                        users::role.eq(role.as_str()),
                        users::password_hash.eq(&hash),
                        users::failed_logins.eq(0),
                        users::locked_until.eq(None::<i64>),
                        users::disabled.eq(false),
                        users::updated_at.eq(now),
                    ))
                    .execute(c)?;
                // A new password ends the user's open sessions.
                diesel::delete(web_sessions::table.filter(web_sessions::user_id.eq(id)))
                    .execute(c)?;
                Ok(false)
            }
            None => {
                diesel::insert_into(users::table)
                    .values((
                        users::name.eq(name),
                        users::role.eq(role.as_str()),
                        users::password_hash.eq(&hash),
                        users::created_at.eq(now),
                        users::updated_at.eq(now),
                    ))
                    .execute(c)?;
                Ok(true)
            }
        }
    })
}

pub fn list(conn: &mut Conn) -> QueryResult<Vec<UserRow>> {
    users::table
        .order(users::name)
        .select(UserRow::as_select())
        .load(conn)
}

/// Lift a lockout after failed sign-ins. Returns the user as it was, None when unknown.
pub fn unlock(conn: &mut Conn, name: &str) -> QueryResult<Option<UserRow>> {
    conn.immediate_transaction(|conn| {
        let Some(before) = users::table
            .filter(users::name.eq(name))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        diesel::update(users::table.find(before.id))
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<i64>),
                users::updated_at.eq(now_ms()),
            ))
            .execute(conn)?;
        Ok(Some(before))
    })
}

pub fn count(conn: &mut Conn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (the same answer for both).
    Wrong,
    /// Too many failures: locked until this time (ms).
    Locked(i64),
    Disabled,
}

/// A fixed hash checked for unknown names, so that the answer takes as long as for a known one.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| crate::exchange::hash_password("not-a-password-of-anyone"))
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Check a name and password; count failures and lock the account after [`LOCK_AFTER`].
pub fn check_login(
    conn: &mut Conn,
    name: &str,
    password: &str,
) -> QueryResult<Result<UserRow, LoginError>> {
    let now = now_ms();
    let user: Option<UserRow> = users::table
        .filter(users::name.eq(name))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?;
    let Some(u) = user else {
        let _ = verify(dummy_hash(), password);
        return Ok(Err(LoginError::Wrong));
    };
    if let Some(until) = u.locked_until.filter(|t| *t > now) {
        return Ok(Err(LoginError::Locked(until)));
    }
    if u.disabled {
        return Ok(Err(LoginError::Disabled));
    }
    if verify(&u.password_hash, password) {
        diesel::update(users::table.find(u.id))
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<i64>),
                users::last_login_at.eq(now),
            ))
            .execute(conn)?;
        return Ok(Ok(u));
    }
    let failures = if u.locked_until.is_some() {
        1 // the lock ran out: count afresh
    } else {
        u.failed_logins + 1
    };
    let lock = (failures >= LOCK_AFTER).then_some(now + LOCK_MS);
    diesel::update(users::table.find(u.id))
        .set((
            users::failed_logins.eq(if lock.is_some() { 0 } else { failures }),
            users::locked_until.eq(lock),
        ))
        .execute(conn)?;
    Ok(Err(match lock {
        Some(t) => LoginError::Locked(t),
        None => LoginError::Wrong,
    }))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Open a session; returns the cookie value.
pub fn open_session(conn: &mut Conn, user_id: i32, addr: &str) -> QueryResult<String> {
    let token = crate::exchange::random_token(64);
    let now = now_ms();
    // Expired sessions go whenever someone signs in.
    diesel::delete(web_sessions::table.filter(web_sessions::expires_at.lt(now))).execute(conn)?;
    diesel::insert_into(web_sessions::table)
        .values((
            web_sessions::token_hash.eq(token_hash(&token)),
            web_sessions::user_id.eq(user_id),
            web_sessions::csrf.eq(crate::exchange::random_token(48)),
            web_sessions::created_at.eq(now),
            web_sessions::expires_at.eq(now + SESSION_MS),
            web_sessions::last_seen_at.eq(now),
            web_sessions::client_addr.eq(addr),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The user behind a cookie value, when the session is live and the user may sign in.
pub fn session_user(conn: &mut Conn, token: &str) -> QueryResult<Option<SessionUser>> {
    let now = now_ms();
    let row: Option<(i32, String, String, String, bool)> = web_sessions::table
        .inner_join(users::table)
        .filter(web_sessions::token_hash.eq(token_hash(token)))
        .filter(web_sessions::expires_at.gt(now))
        .select((
            users::id,
            users::name,
            users::role,
            web_sessions::csrf,
            users::disabled,
        ))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(id, name, role, csrf, disabled)| {
        (!disabled).then(|| SessionUser {
            id,
            name,
            role: role.parse().unwrap_or(Role::Viewer),
            csrf,
        })
    }))
}

pub fn close_session(conn: &mut Conn, token: &str) -> QueryResult<usize> {
    diesel::delete(web_sessions::table.filter(web_sessions::token_hash.eq(token_hash(token))))
        .execute(conn)
}

/// One audited action.
#[derive(Debug, Clone, Default)]
pub struct Audit<'a> {
    pub username: &'a str,
    pub action: &'a str,
    pub target: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub addr: Option<&'a str>,
}

pub fn audit(conn: &mut Conn, a: &Audit) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(now_ms()),
            audit_log::username.eq(a.username),
            audit_log::action.eq(a.action),
            audit_log::target.eq(&a.target),
            audit_log::before.eq(a.before.as_deref().map(crate::relay::journal::excerpt)),
            audit_log::after.eq(a.after.as_deref().map(crate::relay::journal::excerpt)),
            audit_log::client_addr.eq(a.addr),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i32,
    pub at: i64,
    pub username: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub client_addr: Option<String>,
}

/// Newest first, below an id (keyset).
pub fn audit_page(
    conn: &mut Conn,
    before_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut q = audit_log::table.into_boxed();
    if let Some(b) = before_id {
        q = q.filter(audit_log::id.lt(b));
    }
    q.order(audit_log::id.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, crate::store::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
        crate::store::migrate(&mut pool.get().unwrap()).unwrap();
        (dir, pool)
    }

    #[test]
    fn lockout_after_repeated_failures_and_sessions() {
        let (_d, pool) = conn();
        let c = &mut pool.get().unwrap();
        assert!(upsert(c, "anna", Role::Operator, "correct-horse").unwrap());
        assert!(upsert(c, "anna", Role::Operator, "short").is_err());
        assert!(upsert(c, "bad name", Role::Viewer, "correct-horse").is_err());
        assert_eq!(
            check_login(c, "nobody", "x").unwrap().unwrap_err(),
            LoginError::Wrong
        );
        let u = check_login(c, "anna", "correct-horse").unwrap().unwrap();
        assert_eq!(u.role(), Role::Operator);
        for _ in 0..LOCK_AFTER - 1 {
            assert_eq!(
                check_login(c, "anna", "bad").unwrap().unwrap_err(),
                LoginError::Wrong
            );
        }
        assert!(matches!(
            check_login(c, "anna", "bad").unwrap(),
            Err(LoginError::Locked(_))
        ));
        // Locked: even the right password is refused.
        assert!(matches!(
            check_login(c, "anna", "correct-horse").unwrap(),
            Err(LoginError::Locked(_))
        ));
        let token = open_session(c, u.id, "127.0.0.1").unwrap();
        let s = session_user(c, &token).unwrap().unwrap();
        assert_eq!(s.name, "anna");
        assert!(session_user(c, "forged").unwrap().is_none());
        // A new password (the admin's reset) unlocks and ends the open sessions.
        assert!(!upsert(c, "anna", Role::Viewer, "another-pass").unwrap());
        assert!(session_user(c, &token).unwrap().is_none());
        assert!(check_login(c, "anna", "another-pass").unwrap().is_ok());
        // An administrator's unlock lets the right password in again.
        for _ in 0..LOCK_AFTER {
            let _ = check_login(c, "anna", "bad").unwrap();
        }
        assert!(check_login(c, "anna", "another-pass").unwrap().is_err());
        let before = unlock(c, "anna").unwrap().unwrap();
        assert!(before.locked_until.is_some());
        assert!(check_login(c, "anna", "another-pass").unwrap().is_ok());
        assert!(unlock(c, "nobody").unwrap().is_none());
    }
}
