//! [`UserPath`]: a path relative to a user's storage root, validated once.
//!
//! Parse, don't validate: every path that reaches the filesystem layer has
//! been through [`UserPath::parse`] (request fields) or
//! [`UserPath::from_relative`] (scanner output), so the rest of the service
//! never re-checks strings. The checks are purely lexical and never touch the
//! filesystem; symlinks are the business of [`crate::storage::root`].
//!
//! The normalized form has no leading or trailing `/`, no empty or `.`
//! components and never a `..`, so two paths naming the same location
//! lexically are equal as values, and `as_str` can be stored and compared as a
//! key. The root is the empty string.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Component, Path};

/// Longest accepted path, in bytes of its normalized form (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a string is not a valid [`UserPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `..` component: it could leave the root.
    #[error("must not contain '..' components")]
    ParentComponent,
    /// A leading `/`: paths are relative to the user's storage root.
    #[error("must be relative to your storage root (no leading '/')")]
    Absolute,
    /// A NUL byte, which no file name can contain.
    #[error("must not contain NUL bytes")]
    Nul,
    /// A `\`: Windows separators are refused rather than guessed at.
    #[error("must use '/' as the separator, not '\\'")]
    Backslash,
    /// A control character (U+0000–U+001F, U+007F–U+009F).
    #[error("must not contain control characters")]
    ControlChar,
    /// One component is longer than [`MAX_NAME_BYTES`].
    #[error("has a component longer than {MAX_NAME_BYTES} bytes")]
    ComponentTooLong,
    /// The whole path is longer than [`MAX_PATH_BYTES`].
    #[error("is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A filesystem path (from the scanner) that is not valid UTF-8.
    #[error("is not valid UTF-8")]
    NotUtf8,
}

impl PathError {
    /// Whether this error means the path tried to leave the root.
    pub fn is_escape(&self) -> bool {
        matches!(self, PathError::ParentComponent | PathError::Absolute)
    }
}

/// A validated, normalized path relative to a user's storage root.
///
/// It can only hold a valid value: UTF-8, no `..`, not absolute, no NUL,
/// backslash or control character, components of at most 255 bytes and at
/// most 4096 bytes in all. Ordering is component-wise, so a directory sorts
/// immediately before everything under it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct UserPath(String);

impl UserPath {
    /// Parses a path from a request: `"a/b/c.txt"`, `"a/./b"` (→ `"a/b"`),
    /// `"a/b/"` (→ `"a/b"`), and `""` or `"."` for the root.
    pub fn parse(raw: &str) -> Result<UserPath, PathError> {
        if raw.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut out = String::with_capacity(raw.len());
        for component in raw.split('/') {
            push_component(&mut out, component)?;
        }
        Ok(UserPath(out))
    }

    /// Converts a relative path produced by the scanner (for example a
    /// walkdir path with the root prefix stripped). Fails with
    /// [`PathError::NotUtf8`] for names that are not UTF-8.
    pub fn from_relative(p: &Path) -> Result<UserPath, PathError> {
        let mut out = String::new();
        for component in p.components() {
            match component {
                Component::Normal(name) => {
                    let name = name.to_str().ok_or(PathError::NotUtf8)?;
                    push_component(&mut out, name)?;
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(PathError::ParentComponent),
                Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
            }
        }
        Ok(UserPath(out))
    }

    /// The user's storage root itself.
    pub fn root() -> UserPath {
        UserPath(String::new())
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `""` for the root, `"a/b"` otherwise; never a leading or trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends `name`, one component or a relative path (same rules as
    /// [`UserPath::parse`]).
    pub fn join(&self, name: &str) -> Result<UserPath, PathError> {
        let tail = UserPath::parse(name)?;
        self.join_path(&tail)
    }

    /// Appends another user path. Fails only if the result is too long.
    pub fn join_path(&self, tail: &UserPath) -> Result<UserPath, PathError> {
        if tail.is_root() {
            return Ok(self.clone());
        }
        if self.is_root() {
            return Ok(tail.clone());
        }
        let len = self.0.len() + 1 + tail.0.len();
        if len > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let mut out = String::with_capacity(len);
        out.push_str(&self.0);
        out.push('/');
        out.push_str(&tail.0);
        Ok(UserPath(out))
    }

    /// The containing directory; `None` for the root. The parent of `"a"`
    /// is the root.
    pub fn parent(&self) -> Option<UserPath> {
        self.split_last().map(|(parent, _)| parent)
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.split_last().map(|(_, name)| name)
    }

    /// The parent and the last component; `None` for the root. The name is
    /// always exactly one normal component, safe to hand to a raw `*at` call.
    pub fn split_last(&self) -> Option<(UserPath, &str)> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => (UserPath(self.0[..i].to_owned()), &self.0[i + 1..]),
            None => (UserPath::root(), self.0.as_str()),
        })
    }

    /// `self/name`, for a name split off a valid path by
    /// [`UserPath::split_last`] under this same parent: nothing to check
    /// again (a valid path's parts make a valid path), nothing to fail.
    pub(crate) fn with_split_name(&self, name: &str) -> UserPath {
        debug_assert!(is_single_component(name));
        if self.is_root() {
            return UserPath(name.to_owned());
        }
        let mut out = String::with_capacity(self.0.len() + 1 + name.len());
        out.push_str(&self.0);
        out.push('/');
        out.push_str(name);
        debug_assert!(out.len() <= MAX_PATH_BYTES);
        UserPath(out)
    }

    /// The components, in order; empty for the root.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Component-wise prefix test: `"a/b"` starts with `"a"` and with the
    /// root, `"ab"` does not start with `"a"`.
    pub fn starts_with(&self, base: &UserPath) -> bool {
        if base.is_root() {
            return true;
        }
        match self.0.strip_prefix(base.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// The path to hand to cap-std: `"."` for the root (an empty path would
    /// not open anything).
    pub(crate) fn fs_path(&self) -> &Path {
        if self.is_root() {
            Path::new(".")
        } else {
            Path::new(&self.0)
        }
    }
}

/// Validates one raw component and appends it to `out` (skipping `""` and `.`).
fn push_component(out: &mut String, component: &str) -> Result<(), PathError> {
    match component {
        "" | "." => return Ok(()),
        ".." => return Err(PathError::ParentComponent),
        _ => {}
    }
    check_name(component)?;
    let extra = if out.is_empty() { 0 } else { 1 };
    if out.len() + extra + component.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if extra == 1 {
        out.push('/');
    }
    out.push_str(component);
    Ok(())
}

/// The character checks of one component (not `""`, `.` or `..`).
fn check_name(name: &str) -> Result<(), PathError> {
    for c in name.chars() {
        match c {
            '\0' => return Err(PathError::Nul),
            '\\' => return Err(PathError::Backslash),
            '/' => return Err(PathError::Absolute),
            c if c.is_control() => return Err(PathError::ControlChar),
            _ => {}
        }
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::ComponentTooLong);
    }
    Ok(())
}

/// Whether `name` is exactly one normal component that a raw `*at` syscall
/// may receive without leaving its directory: not empty, not `.` or `..`, no
/// `/`, and the same character rules as a [`UserPath`] component.
pub(crate) fn is_single_component(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.contains('/') && check_name(name).is_ok()
}

impl Ord for UserPath {
    fn cmp(&self, other: &Self) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for UserPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for UserPath {
    /// The normalized form; the root displays as `.` so logs never show an
    /// empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl fmt::Debug for UserPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserPath({:?})", self.0)
    }
}

impl std::str::FromStr for UserPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserPath::parse(s)
    }
}

impl TryFrom<&str> for UserPath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        UserPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn p(s: &str) -> UserPath {
        UserPath::parse(s).unwrap()
    }

    #[test]
    fn accepts_and_normalizes() {
        assert_eq!(p("a/b/c.txt").as_str(), "a/b/c.txt");
        assert_eq!(p("a/./b").as_str(), "a/b");
        assert_eq!(p("./a").as_str(), "a");
        assert_eq!(p("a/b/").as_str(), "a/b");
        assert_eq!(p("a//b").as_str(), "a/b");
        assert_eq!(p("caf\u{e9} (1).jpg").as_str(), "caf\u{e9} (1).jpg");
        assert_eq!(p("...").as_str(), "...");
        assert_eq!(p(".hidden/..x").as_str(), ".hidden/..x");
        for root in ["", ".", "./", "./.", ".//."] {
            assert!(p(root).is_root(), "{root:?}");
            assert_eq!(p(root).as_str(), "");
        }
        assert_eq!(p("a/b"), p("a/./b/"));
        assert_eq!(p("").to_string(), ".");
        assert_eq!(p("x/y").to_string(), "x/y");
    }

    #[test]
    fn rejects_parent_components_everywhere() {
        for raw in [
            "..",
            "../a",
            "a/..",
            "a/../b",
            "a/b/..",
            "./..",
            "../",
            "a/../../etc",
        ] {
            assert_eq!(
                UserPath::parse(raw),
                Err(PathError::ParentComponent),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(UserPath::parse("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(UserPath::parse("/"), Err(PathError::Absolute));
        assert_eq!(UserPath::parse("a\0b"), Err(PathError::Nul));
        assert_eq!(UserPath::parse("a\\b"), Err(PathError::Backslash));
        assert_eq!(UserPath::parse("..\\x"), Err(PathError::Backslash));
        for raw in ["a\nb", "a\tb", "\x1b[31m", "a\x7fb", "a\u{85}b"] {
            assert_eq!(UserPath::parse(raw), Err(PathError::ControlChar), "{raw:?}");
        }
        let long_name = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            UserPath::parse(&long_name),
            Err(PathError::ComponentTooLong)
        );
        assert!(UserPath::parse(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        // 255 multi-byte characters are more than 255 bytes.
        assert_eq!(
            UserPath::parse(&"é".repeat(200)),
            Err(PathError::ComponentTooLong)
        );
        let component = "y".repeat(200);
        let long = vec![component.as_str(); 21].join("/"); // 21*201-1 = 4220 bytes
        assert_eq!(UserPath::parse(&long), Err(PathError::TooLong));
        let fits = vec![component.as_str(); 20].join("/");
        assert!(UserPath::parse(&fits).is_ok());
    }

    #[test]
    fn starts_with_is_component_wise() {
        assert!(p("a/b").starts_with(&p("a")));
        assert!(p("a/b").starts_with(&p("a/b")));
        assert!(p("a/b").starts_with(&UserPath::root()));
        assert!(UserPath::root().starts_with(&UserPath::root()));
        assert!(!p("ab").starts_with(&p("a")));
        assert!(!p("a/bc").starts_with(&p("a/b")));
        assert!(!p("a").starts_with(&p("a/b")));
        assert!(!UserPath::root().starts_with(&p("a")));
    }

    #[test]
    fn join_parent_and_name() {
        let base = p("a");
        assert_eq!(base.join("b.txt").unwrap(), p("a/b.txt"));
        assert_eq!(base.join("b/c").unwrap(), p("a/b/c"));
        assert_eq!(UserPath::root().join("x").unwrap(), p("x"));
        assert_eq!(base.join("").unwrap(), base);
        assert_eq!(base.join(".."), Err(PathError::ParentComponent));
        assert_eq!(base.join("b/../../x"), Err(PathError::ParentComponent));
        assert_eq!(base.join("/etc"), Err(PathError::Absolute));
        assert_eq!(base.join_path(&p("c/d")).unwrap(), p("a/c/d"));
        let big = p(&vec!["z".repeat(250); 16].join("/"));
        assert_eq!(big.join_path(&big), Err(PathError::TooLong));

        assert_eq!(p("a/b/c").parent(), Some(p("a/b")));
        assert_eq!(p("a").parent(), Some(UserPath::root()));
        assert_eq!(UserPath::root().parent(), None);
        assert_eq!(p("a/b/c").file_name(), Some("c"));
        assert_eq!(UserPath::root().file_name(), None);
        assert_eq!(p("a/b/c").components().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(UserPath::root().components().count(), 0);
    }

    #[test]
    fn orders_component_wise() {
        let mut v = vec![p("a0"), p("a/b"), p("a-b"), p("a"), UserPath::root()];
        v.sort();
        assert_eq!(v, [UserPath::root(), p("a"), p("a/b"), p("a-b"), p("a0")]);
    }

    #[test]
    fn from_relative_requires_utf8() {
        let ok = UserPath::from_relative(Path::new("./x/y.txt")).unwrap();
        assert_eq!(ok, p("x/y.txt"));
        let bad = Path::new(OsStr::from_bytes(b"dir/caf\xe9.jpg"));
        assert_eq!(UserPath::from_relative(bad), Err(PathError::NotUtf8));
        assert_eq!(
            UserPath::from_relative(Path::new("/abs")),
            Err(PathError::Absolute)
        );
        assert_eq!(
            UserPath::from_relative(Path::new("a/../b")),
            Err(PathError::ParentComponent)
        );
        assert_eq!(
            UserPath::from_relative(Path::new("a\\b")),
            Err(PathError::Backslash)
        );
    }

    #[test]
    fn single_component_check() {
        assert!(is_single_component("a.txt"));
        for bad in ["", ".", "..", "a/b", "a\0", "x\n"] {
            assert!(!is_single_component(bad), "{bad:?}");
        }
    }

    mod properties {
        use super::*;
        use crate::testing::hostile_path;
        use proptest::prelude::*;

        /// Whether `joined` stays lexically under `root`: no component after
        /// the root's may be `..`, `.`, a root or a prefix.
        fn stays_under(root: &Path, joined: &Path) -> bool {
            joined.starts_with(root)
                && joined
                    .strip_prefix(root)
                    .expect("starts with root")
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Any string either fails to parse or yields a normalized path
            /// that cannot leave the root, whatever it was made of.
            #[test]
            fn parsed_paths_never_escape(raw in hostile_path()) {
                let Ok(path) = UserPath::parse(&raw) else {
                    return Ok(());
                };
                let s = path.as_str();
                prop_assert!(!s.starts_with('/'));
                prop_assert!(!s.ends_with('/'));
                prop_assert!(!s.contains('\0') && !s.contains('\\'));
                prop_assert!(!s.chars().any(char::is_control));
                prop_assert!(s.len() <= MAX_PATH_BYTES);
                for component in path.components() {
                    prop_assert!(!matches!(component, "" | "." | ".."), "{raw:?} -> {s:?}");
                    prop_assert!(component.len() <= MAX_NAME_BYTES);
                }
                let root = Path::new("/srv/storage/user");
                let joined = root.join(path.fs_path());
                prop_assert!(stays_under(root, &joined), "{raw:?} -> {joined:?}");
                // Normalization is idempotent: the stored form parses to itself.
                prop_assert_eq!(UserPath::parse(s), Ok(path.clone()));
            }

            /// A `..` component anywhere is always refused, and as an escape.
            #[test]
            fn parent_components_are_always_refused(
                before in proptest::collection::vec("[a-z.]{0,4}", 0..4),
                after in proptest::collection::vec("[a-z.]{0,4}", 0..4),
            ) {
                let raw = [before, vec!["..".to_string()], after].concat().join("/");
                let error = UserPath::parse(&raw).expect_err("'..' must be refused");
                prop_assert!(error.is_escape() || error == PathError::Absolute, "{raw:?}: {error:?}");
            }

            /// Joining two valid paths never produces an escaping path either.
            #[test]
            fn joined_paths_stay_valid(a in hostile_path(), b in hostile_path()) {
                if let (Ok(a), Ok(b)) = (UserPath::parse(&a), UserPath::parse(&b))
                    && let Ok(joined) = a.join_path(&b)
                {
                    prop_assert!(joined.starts_with(&a));
                    let root = Path::new("/srv/storage/user");
                    prop_assert!(stays_under(root, &root.join(joined.fs_path())));
                }
            }
        }
    }
}
