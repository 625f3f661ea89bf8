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

    /// Verifies employee id + PIN for `asker` (a client address, or the session asking for
    /// an approval), persisting the lock-out state either way. One check at a time per
    /// employee (read, verify and write back under one lock, so parallel attempts cannot
    /// start from the same failure count); at most [`throttle::HASHES_AT_ONCE`] hashes at
    /// once; an asker who gave wrong PINs waits longer before each next check.
    pub(super) async fn verify_pin(
        &self,
        employee_id: &str,
        pin: &str,
        asker: &str,
    ) -> Result<Account, TillError> {
        let _one_at_a_time = self.throttle.stripe(employee_id).lock().await;
        let id = employee_id.to_string();
        let store = self.store.clone();
        let account = self
            .off_executor(move || store.read(|r| r.account(&id)))
            .await??;
        // A locked account answers so at once, without hashing.
        if let Some(a) = &account
            && a.locked_until_ms > self.now()
        {
            return Err(cashier::AuthError::Locked {
                until_ms: a.locked_until_ms,
            }
            .into());
        }
        if let Some(ms) = self.throttle.wait_ms(asker, self.now()) {
            self.metrics.pin_throttled.inc();
            let s = ms.div_ceil(1000);
            return Err(TillError::Throttled {
                retry_after_s: s,
                message: format!("too many wrong PINs: wait {s} s and try again"),
            });
        }
        let _slot = tokio::time::timeout(
            std::time::Duration::from_millis(throttle::HASH_WAIT_MS),
            self.throttle.hashing().acquire(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            self.metrics.pin_throttled.inc();
            TillError::Throttled {
                retry_after_s: 1,
                message: "the till is checking many PINs at once: try again in a moment".into(),
            }
        })?;
        let Some(mut account) = account else {
            // Same answer as a wrong PIN after the same work, so ids show neither by the
            // answer nor by its timing.
            let dummy = self.dummy_hash.clone();
            let pin = pin.to_string();
            self.off_executor(move || cashier::verify_hash(&dummy, &pin))
                .await?;
            self.throttle.failed(asker, self.now());
            self.metrics.login_failures.inc();
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
        match &outcome {
            Ok(()) => self.throttle.succeeded(asker),
            Err(cashier::AuthError::BadCredentials { .. }) => {
                self.throttle.failed(asker, now);
                self.metrics.login_failures.inc();
            }
            Err(_) => {}
        }
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

    /// Logs a cashier in (`asker`: the client's address); an existing session of the same
    /// cashier on this till ends. A demo account (seeded from the config's clear-text PINs)
    /// signs in only on a till in demo mode.
    pub async fn login(
        &self,
        employee_id: &str,
        pin: &str,
        asker: &str,
    ) -> Result<LoginView, TillError> {
        self.audited(employee_id, "auth.login", employee_id, async {
            let account = self.verify_pin(employee_id, pin, asker).await?;
            if !self.cfg.security.demo && self.demo_accounts.contains(&account.employee_id) {
                return Err(TillError::forbidden(
                    "demo_account",
                    format!(
                        "{} is a demo account with a published PIN, and this till is not in demo mode: give staff their own PINs through HQ (tillmesh hq cashier)",
                        account.employee_id
                    ),
                ));
            }
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
        let asker = format!("session:{}", s.employee_id);
        let account = self.verify_pin(&a.employee_id, &a.pin, &asker).await?;
        if !account.role.allows(perm) {
            return Err(TillError::forbidden(
                "approval_refused",
                format!("{} is not allowed to approve {perm:?}", account.employee_id),
            ));
        }
        Ok(account.employee_id)
    }
}
