//! Who is asking, and what they may do: access keys, actors and policy checks.
//!
//! Keys are `vpcdns_<id>_<secret>`; only the SHA-256 of the secret is stored, and comparison is constant-time.
//! An actor is the operator (local Unix socket) or a tenant principal: a root account, or a sub-user whose
//! policies decide between reading and writing. Nothing here touches the store.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::docs::KeyDoc;
use super::error::ControlError;
use super::fold::ControlState;
use crate::model::state::{Policy, Uid};

/// The principal behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Whoever runs vpcdns: owns the inventory (accounts, sites, VPCs).
    Operator,
    Tenant(Tenant),
}

/// A tenant principal: a root account or one of its sub-users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub account: Uid,
    pub user: Option<String>,
    pub policies: Vec<Policy>,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::Tenant(Tenant { account, user: None, .. }) => write!(f, "root:{account}"),
            Actor::Tenant(Tenant { account, user: Some(u), .. }) => write!(f, "{u}@{account}"),
        }
    }
}

impl Actor {
    /// The actor as people see it everywhere (answers, audit): `operator`, `root@acme`, `reader@acme` — the
    /// account's name (its uid when it has none).
    pub(crate) fn principal(&self, state: &crate::model::state::State) -> String {
        match self {
            Actor::Operator => "operator".into(),
            Actor::Tenant(t) => principal_of(state, &t.account, t.user.as_deref()),
        }
    }
}

/// `<user>@<account name>`, `root@<account name>` for the root account.
pub(crate) fn principal_of(state: &crate::model::state::State, account: &Uid, user: Option<&str>) -> String {
    let name = state.accounts.get(account).map_or(account.0.as_str(), |a| a.name.as_str());
    format!("{}@{name}", user.unwrap_or("root"))
}

impl Tenant {
    pub(crate) fn is_root(&self) -> bool {
        self.user.is_none()
    }

    fn can_write(&self) -> bool {
        self.is_root() || self.policies.contains(&Policy::DnsFullAccess)
    }

    fn can_read(&self) -> bool {
        self.can_write() || self.policies.contains(&Policy::DnsReadOnlyAccess)
    }

    /// Reading DNS resources of its own account.
    pub(crate) fn require_read(&self) -> Result<&Uid, ControlError> {
        if self.can_read() {
            Ok(&self.account)
        } else {
            Err(ControlError::forbidden("this user holds no DNS policy (DNSReadOnlyAccess or DNSFullAccess)"))
        }
    }

    /// Changing DNS resources of its own account.
    pub(crate) fn require_write(&self) -> Result<&Uid, ControlError> {
        if self.can_write() {
            Ok(&self.account)
        } else {
            Err(ControlError::forbidden("changing DNS resources needs the DNSFullAccess policy"))
        }
    }

    /// Actions only the root account may take (its inbox, its users and their keys).
    pub(crate) fn require_root(&self) -> Result<&Uid, ControlError> {
        if self.is_root() {
            Ok(&self.account)
        } else {
            Err(ControlError::forbidden("only the root account may do this"))
        }
    }
}

impl Actor {
    pub fn tenant(&self) -> Result<&Tenant, ControlError> {
        match self {
            Actor::Tenant(t) => Ok(t),
            Actor::Operator => Err(ControlError::invalid("operator", "this is a tenant action: use an access key")),
        }
    }

    pub(crate) fn require_operator(&self) -> Result<(), ControlError> {
        match self {
            Actor::Operator => Ok(()),
            Actor::Tenant(_) => Err(ControlError::forbidden("operator actions are only available on the local socket")),
        }
    }
}

/// A freshly minted key: the full token is shown once; the document keeps only its hash.
pub(crate) struct NewKey {
    pub token: String,
    pub doc: KeyDoc,
}

/// Mints a key for `account` (and `user`, for a sub-user), valid until `expires`.
pub(crate) fn mint_key(
    account: &Uid,
    user: Option<&str>,
    now: u64,
    expires: Option<u64>,
) -> Result<NewKey, ControlError> {
    let id = random_hex(8)?;
    let secret = random_hex(32)?;
    Ok(NewKey {
        token: format!("vpcdns_{id}_{secret}"),
        doc: KeyDoc {
            id,
            account: account.0.clone(),
            user: user.map(str::to_string),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: now,
            expires,
        },
    })
}

/// Resolves a bearer token to its actor. Every failure is the same 401 so that probing learns nothing.
pub(crate) fn authenticate(control: &ControlState, token: &str, now: u64) -> Result<Actor, ControlError> {
    let unauthorized = || ControlError::Unauthenticated;
    let rest = token.strip_prefix("vpcdns_").ok_or_else(unauthorized)?;
    let (id, secret) = rest.split_once('_').ok_or_else(unauthorized)?;
    let doc = control.keys.get(id).ok_or_else(unauthorized)?;
    let presented = sha256_hex(secret.as_bytes());
    if !bool::from(presented.as_bytes().ct_eq(doc.secret_sha256.as_bytes())) {
        return Err(unauthorized());
    }
    if doc.expires.is_some_and(|e| e <= now) {
        return Err(unauthorized());
    }
    let account = Uid(doc.account.clone());
    if !control.state.accounts.contains_key(&account) {
        return Err(unauthorized());
    }
    let policies = match &doc.user {
        None => vec![Policy::DnsFullAccess],
        Some(user) => {
            let u = control.state.users.get(&(account.clone(), user.clone())).ok_or_else(unauthorized)?;
            u.policies.clone()
        }
    };
    Ok(Actor::Tenant(Tenant { account, user: doc.user.clone(), policies }))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&Sha256::digest(bytes))
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(n: usize) -> Result<String, ControlError> {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes)?;
    Ok(hex_encode(&bytes))
}

/// Fills `buf` from the operating system's CSPRNG. Failing is an error, never a predictable fallback.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ControlError> {
    getrandom::fill(buf).map_err(|e| ControlError::internal(format!("the OS random source failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Served;

    #[test]
    fn keys_authenticate_only_with_the_right_secret() {
        let mut control = ControlState::new(Served::default());
        let uid = Uid("1".into());
        control.state.accounts.insert(
            uid.clone(),
            crate::model::state::Account {
                uid: uid.clone(),
                name: "acme".into(),
                email: "a@b.example".into(),
                site: crate::model::state::Site::Intl,
            },
        );
        let key = mint_key(&uid, None, 100, Some(200)).unwrap();
        control.keys.insert(key.doc.id.clone(), key.doc.clone());
        assert!(matches!(authenticate(&control, &key.token, 150), Ok(Actor::Tenant(t)) if t.is_root()));
        assert!(authenticate(&control, &key.token, 200).is_err(), "expired");
        let forged = format!("{}x", key.token);
        assert!(authenticate(&control, &forged, 150).is_err());
        assert!(authenticate(&control, "Bearer nonsense", 150).is_err());
    }
}
