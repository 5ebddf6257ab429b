//! The in-memory copy of the revocations in the database, so that a
//! revocation check needs no I/O.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tollgate_core::policy::TokenRef;

/// Which kind of name a watermark is for; stored as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Subject = 0,
    Client = 1,
}

impl Kind {
    pub(crate) fn from_db(v: i64) -> Option<Kind> {
        match v {
            0 => Some(Kind::Subject),
            1 => Some(Kind::Client),
            _ => None,
        }
    }
}

/// One change to the revocations, applied to the mirror once committed.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A token revoked by (`iss`, `jti`) until `exp`.
    Token {
        iss: Box<str>,
        jti: Box<str>,
        exp: i64,
    },
    /// A watermark raised (never lowered).
    Watermark {
        iss: Box<str>,
        kind: Kind,
        name: Box<str>,
        before: i64,
        keep_until: i64,
    },
    /// Entries whose expiry is before `cutoff` removed.
    Purge { cutoff: i64 },
}

#[derive(Debug, Default)]
struct IssuerRevs {
    tokens: HashMap<Box<str>, i64>,
    /// Name -> (watermark, keep until).
    subjects: HashMap<Box<str>, (i64, i64)>,
    clients: HashMap<Box<str>, (i64, i64)>,
}

impl IssuerRevs {
    fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.subjects.is_empty() && self.clients.is_empty()
    }
}

/// Revocations by issuer, with the same rules as the database.
#[derive(Debug, Default)]
pub(crate) struct Revs {
    issuers: HashMap<Box<str>, IssuerRevs>,
}

impl Revs {
    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::Token { iss, jti, exp } => {
                let revs = self.issuers.entry(iss.clone()).or_default();
                let cur = revs.tokens.entry(jti.clone()).or_insert(*exp);
                *cur = (*cur).max(*exp);
            }
            Change::Watermark {
                iss,
                kind,
                name,
                before,
                keep_until,
            } => {
                let revs = self.issuers.entry(iss.clone()).or_default();
                let map = match kind {
                    Kind::Subject => &mut revs.subjects,
                    Kind::Client => &mut revs.clients,
                };
                let mark = map.entry(name.clone()).or_insert((*before, *keep_until));
                mark.0 = mark.0.max(*before);
                mark.1 = mark.1.max(*keep_until);
            }
            Change::Purge { cutoff } => {
                let cutoff = *cutoff;
                for revs in self.issuers.values_mut() {
                    revs.tokens.retain(|_, exp| *exp >= cutoff);
                    revs.subjects.retain(|_, (_, keep)| *keep >= cutoff);
                    revs.clients.retain(|_, (_, keep)| *keep >= cutoff);
                }
                self.issuers.retain(|_, revs| !revs.is_empty());
            }
        }
    }

    pub(crate) fn is_revoked(&self, token: TokenRef<'_>) -> bool {
        let Some(revs) = self.issuers.get(token.issuer) else {
            return false;
        };
        let before = |map: &HashMap<Box<str>, (i64, i64)>, name: Option<&str>| {
            name.and_then(|n| map.get(n))
                .is_some_and(|(mark, _)| token.issued_at.is_none_or(|iat| iat <= *mark))
        };
        token.token_id.is_some_and(|j| revs.tokens.contains_key(j))
            || before(&revs.subjects, token.subject)
            || before(&revs.clients, token.client_id)
    }
}

/// The committed revocations, shared by the callers (reading) and the
/// writer thread (the only one that changes them, after each commit).
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    any: AtomicBool,
    revs: RwLock<Revs>,
}

impl Mirror {
    pub(crate) fn new(revs: Revs) -> Self {
        Mirror {
            any: AtomicBool::new(!revs.is_empty()),
            revs: RwLock::new(revs),
        }
    }

    pub(crate) fn is_revoked(&self, token: TokenRef<'_>) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.revs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_revoked(token)
    }

    pub(crate) fn apply_all(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut revs = self.revs.write().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            revs.apply(change);
        }
        self.any.store(!revs.is_empty(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token<'a>(jti: &'a str, sub: &'a str, iat: Option<i64>) -> TokenRef<'a> {
        TokenRef {
            issuer: "iss",
            token_id: Some(jti),
            subject: Some(sub),
            client_id: None,
            issued_at: iat,
            expires_at: 1000,
        }
    }

    #[test]
    fn watermarks_rise_and_purge() {
        let m = Mirror::default();
        assert!(!m.is_revoked(token("a", "s", Some(5))));
        let mark = |before, keep_until| Change::Watermark {
            iss: "iss".into(),
            kind: Kind::Subject,
            name: "s".into(),
            before,
            keep_until,
        };
        m.apply_all(&[mark(10, 100), mark(1, 50)]);
        assert!(m.is_revoked(token("a", "s", Some(5))));
        assert!(m.is_revoked(token("a", "s", None)));
        // Inclusive: the watermark's own second is revoked too.
        assert!(m.is_revoked(token("a", "s", Some(10))));
        assert!(!m.is_revoked(token("a", "s", Some(11))));
        assert!(!m.is_revoked(token("a", "t", Some(5))));
        m.apply_all(&[Change::Purge { cutoff: 100 }]);
        assert!(m.is_revoked(token("a", "s", Some(5))));
        m.apply_all(&[Change::Purge { cutoff: 101 }]);
        assert!(!m.is_revoked(token("a", "s", Some(5))));
        assert!(!m.any.load(Ordering::Acquire));
    }

    #[test]
    fn tokens_keep_latest_expiry() {
        let m = Mirror::default();
        let revoke = |exp| Change::Token {
            iss: "iss".into(),
            jti: "a".into(),
            exp,
        };
        m.apply_all(&[revoke(20), revoke(10)]);
        m.apply_all(&[Change::Purge { cutoff: 15 }]);
        assert!(m.is_revoked(token("a", "s", Some(5))));
        assert!(!m.is_revoked(token("b", "s", Some(5))));
    }
}
