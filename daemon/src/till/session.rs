//! Sessions: PIN login with lock-out, logout, bearer tokens, and manager approval of a cashier's
//! request.

use super::*;

impl Till {
    /// Checks a bearer token.
    pub fn session(&self, token: &str) -> Result<Session, TillError> {
        let now = self.now();
        let mut core = self.core();
        match core.sessions.get(token) {
            Some(s) if s.expires_ms > now => Ok(s.clone()),
            Some(_) => {
                core.sessions.remove(token);
                self.metrics.sessions.set(core.sessions.len() as i64);
                Err(TillError::unauthorized(
                    "your session has expired; log in again",
                ))
            }
            None => Err(TillError::unauthorized(
                "log in first: send 'Authorization: Bearer <token>' from /api/v1/auth/login",
            )),
        }
    }

    /// Verifies employee id + PIN, persisting the lock-out state either way.
    pub(super) async fn verify_pin(
        &self,
        employee_id: &str,
        pin: &str,
    ) -> Result<Account, TillError> {
        let id = employee_id.to_string();
        let store = self.store.clone();
        let account = self
            .off_executor(move || store.read(|r| r.account(&id)))
            .await??;
        let Some(mut account) = account else {
            // Same answer as a wrong PIN, so ids cannot be probed.
            return Err(cashier::AuthError::BadCredentials { locked_now: false }.into());
        };
        let policy = LockPolicy {
            attempts_max: self.cfg.security.lock_attempts_max,
            lock_ms: self.cfg.security.lock_ms,
        };
        let now = self.now();
        let pin = pin.to_string();
        let (account, outcome) = self
            .off_executor(move || {
                let r = cashier::authenticate(&mut account, &pin, now, policy);
                (account, r)
            })
            .await?;
        if matches!(
            outcome,
            Err(cashier::AuthError::BadCredentials { locked_now: true })
        ) {
            warn!(employee_id, "account locked after repeated wrong PINs");
            self.audit(audit_rec(
                now,
                employee_id,
                "auth.locked",
                employee_id,
                "alert",
                "too many wrong PINs".into(),
            ))
            .await?;
        }
        if !matches!(outcome, Err(cashier::AuthError::Locked { .. })) {
            let info = self
                .store
                .commit(WriteBatch {
                    accounts: vec![account.clone()],
                    ..Default::default()
                })
                .await?;
            self.observe(&info);
        }
        outcome?;
        Ok(account)
    }

    /// Logs a cashier in; an existing session of the same cashier on this till ends.
    pub async fn login(&self, employee_id: &str, pin: &str) -> Result<LoginView, TillError> {
        self.audited(employee_id, "auth.login", employee_id, async {
            let account = self.verify_pin(employee_id, pin).await?;
            let now = self.now();
            let token = hex::encode(random_bytes::<32>());
            let expires_ms = now + self.cfg.security.session_ttl_ms;
            {
                let mut core = self.core();
                core.sessions
                    .retain(|_, s| s.employee_id != account.employee_id && s.expires_ms > now);
                if core.sessions.len() >= self.cfg.security.sessions_max {
                    return Err(TillError::conflict(
                        "too_many_sessions",
                        "too many cashiers are logged in on this till; log one out first",
                    ));
                }
                core.sessions.insert(
                    token.clone(),
                    Session {
                        employee_id: account.employee_id.clone(),
                        name: account.name.clone(),
                        role: account.role,
                        expires_ms,
                    },
                );
                self.metrics.sessions.set(core.sessions.len() as i64);
            }
            self.audit(audit_rec(
                now,
                employee_id,
                "auth.login",
                employee_id,
                "ok",
                String::new(),
            ))
            .await?;
            Ok(LoginView {
                token,
                employee_id: account.employee_id,
                name: account.name,
                role: account.role,
                expires_at: rfc3339(expires_ms),
            })
        })
        .await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str, s: &Session) -> Result<(), TillError> {
        {
            let mut core = self.core();
            core.sessions.remove(token);
            self.metrics.sessions.set(core.sessions.len() as i64);
        }
        self.audit(audit_rec(
            self.now(),
            &s.employee_id,
            "auth.logout",
            &s.employee_id,
            "ok",
            String::new(),
        ))
        .await
    }

    /// Returns who approves `perm`: the session's own role, or a manager's PIN.
    pub(super) async fn approve(
        &self,
        s: &Session,
        perm: Permission,
        approval: Option<&Approval>,
    ) -> Result<String, TillError> {
        if s.role.allows(perm) {
            return Ok(s.employee_id.clone());
        }
        let Some(a) = approval else {
            return Err(TillError::forbidden(
                "approval_required",
                format!(
                    "{perm:?} needs a manager: add an approval with a manager's employee id and PIN"
                ),
            ));
        };
        let account = self.verify_pin(&a.employee_id, &a.pin).await?;
        if !account.role.allows(perm) {
            return Err(TillError::forbidden(
                "approval_refused",
                format!("{} is not allowed to approve {perm:?}", account.employee_id),
            ));
        }
        Ok(account.employee_id)
    }
}
