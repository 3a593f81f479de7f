//! Scopes: what a credential may do, coarser than RPCs and finer than a role.
//!
//! An API key carries a list of scope names (`ApiKey.scopes`). The set is
//! small and closed; [`Scope::parse`] is the only way from a name to a scope,
//! so an unknown name is refused at CreateApiKey (INVALID_ARGUMENT naming
//! `api_key.scopes`) and, on a key stored before scopes were enforced,
//! grants nothing.
//!
//! What a credential may do, as a [`Scopes`] set:
//! - an access token (a login session): every scope of the user's *current*
//!   role ([`Scopes::of_role`]: `admin` only for admins);
//! - an API key with no scopes (every key created before scopes were
//!   enforced, and keys created without any): the same, full access of the
//!   owner's role, which keeps old keys working;
//! - an API key with scopes: those it names, within its owner's current role
//!   (a key with `admin` of a demoted admin no longer has it).
//!
//! Which scope each RPC needs is the one table of `auth::access`.

use std::fmt;

use super::Role;

/// One permission an API key can be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Browse, download and search files; list the trash and categories.
    FilesRead,
    /// Upload, delete, restore and empty the trash; manage categories.
    FilesWrite,
    /// Read operations and everything derived from them: their file
    /// records, reports, duplicate groups, exports, the usage summary.
    OperationsRead,
    /// Create, apply, cancel and undo operations (these move files within
    /// the user's storage, never create or delete content).
    OperationsWrite,
    /// Create, list and revoke API keys (never beyond the caller's scopes).
    Keys,
    /// Change the profile or password; end sessions (Logout).
    Account,
    /// The admin RPCs; needs the admin role as well.
    Admin,
}

impl Scope {
    /// Every scope, in the order names are listed.
    pub const ALL: [Scope; 7] = [
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::OperationsRead,
        Scope::OperationsWrite,
        Scope::Keys,
        Scope::Account,
        Scope::Admin,
    ];

    /// The name used on the wire (`ApiKey.scopes`) and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FilesRead => "files.read",
            Scope::FilesWrite => "files.write",
            Scope::OperationsRead => "operations.read",
            Scope::OperationsWrite => "operations.write",
            Scope::Keys => "keys",
            Scope::Account => "account",
            Scope::Admin => "admin",
        }
    }

    /// The scope with this exact name (names are lower case).
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);

    /// Every scope a user of `role` can hold (all but `admin` for users).
    pub fn of_role(role: Role) -> Scopes {
        Scope::ALL
            .into_iter()
            .filter(|s| *s != Scope::Admin || role == Role::Admin)
            .collect()
    }

    /// The scopes a stored key names; unknown names (possible on keys made
    /// before scopes were enforced) grant nothing.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Scopes {
        names
            .iter()
            .filter_map(|n| Scope::parse(n.as_ref()))
            .collect()
    }

    /// What a key with `stored` scope names may do for an owner of `role`:
    /// full access of the role when it names none (see the module doc).
    pub fn of_key<S: AsRef<str>>(stored: &[S], role: Role) -> Scopes {
        if stored.is_empty() {
            Scopes::of_role(role)
        } else {
            Scopes::from_names(stored).intersection(Scopes::of_role(role))
        }
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn intersection(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes of `self` that `other` lacks.
    pub fn missing_from(self, other: Scopes) -> Scopes {
        Scopes(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names, in [`Scope::ALL`] order (how keys store them).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_string()).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Scopes {
        let mut set = Scopes::NONE;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

/// The list of scope names, for messages: `files.read, files.write, …`.
pub fn all_names() -> String {
    Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_not_scopes() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        for unknown in ["", "files", "FILES.READ", "files.read ", "read:files", "*"] {
            assert_eq!(Scope::parse(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn roles_and_keys() {
        let user = Scopes::of_role(Role::User);
        assert!(!user.contains(Scope::Admin) && user.contains(Scope::Keys));
        assert_eq!(
            Scopes::of_role(Role::Admin).iter().count(),
            Scope::ALL.len()
        );
        // A key without scopes: the role's full access.
        assert_eq!(Scopes::of_key::<&str>(&[], Role::User), user);
        // Named scopes, within the role; unknown names grant nothing.
        let key = Scopes::of_key(&["files.read", "admin", "bogus"], Role::User);
        assert_eq!(key.names(), ["files.read"]);
        assert!(Scopes::of_key(&["bogus"], Role::Admin).is_empty());
        let admin_key = Scopes::of_key(&["admin"], Role::Admin);
        assert!(admin_key.contains(Scope::Admin));
    }

    #[test]
    fn set_operations() {
        let a: Scopes = [Scope::FilesRead, Scope::Keys].into_iter().collect();
        let b: Scopes = [Scope::FilesRead].into_iter().collect();
        assert!(b.missing_from(a).is_empty());
        assert_eq!(a.missing_from(b).names(), ["keys"]);
        assert_eq!(a.names(), ["files.read", "keys"]);
        assert_eq!(format!("{a:?}"), r#"{"files.read", "keys"}"#);
    }
}
