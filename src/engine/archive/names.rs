//! An archive entry's name, judged once: the relative path it is stored
//! under, or why it is skipped. Purely lexical, like `UserPath::parse`; the
//! file system's word (a symlink on the way, a file in the way) comes when
//! the entry is written.

use crate::domain::archive::SkipReason;
use crate::storage::{MAX_DEPTH, TEMP_PREFIX, UserPath, trash::trash_folder};

/// What an entry name means under the target folder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Store it at this path (relative to the storage root).
    Store(UserPath),
    /// The target folder itself (`./`): nothing to do.
    Target,
    /// Skip it, with the reason and a detail for people.
    Skip(SkipReason, String),
}

/// The path under `target` (at `target_depth` components below the root)
/// that the entry named `raw` is stored at. Separators are `/`; `.` and
/// empty components are dropped (`./a//b/` is `a/b`).
pub(crate) fn judge(raw: &[u8], target: &UserPath, target_depth: usize) -> Judged {
    let Ok(name) = std::str::from_utf8(raw) else {
        return Judged::Skip(
            SkipReason::NameNotUtf8,
            "the name is not valid UTF-8".into(),
        );
    };
    if name.starts_with('/') {
        return Judged::Skip(
            SkipReason::UnsafePath,
            "an absolute name; entries are stored only under the target folder".into(),
        );
    }
    let components: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if components.contains(&"..") {
        return Judged::Skip(
            SkipReason::UnsafePath,
            "a '..' component; entries are stored only under the target folder".into(),
        );
    }
    if components.is_empty() {
        return Judged::Target;
    }
    if target_depth + components.len() > MAX_DEPTH {
        return Judged::Skip(
            SkipReason::TooDeep,
            format!(
                "{} folder levels below the target; the storage walks at most {MAX_DEPTH} \
                 below the root",
                components.len()
            ),
        );
    }
    let path = match UserPath::parse(&components.join("/")).and_then(|p| target.join_path(&p)) {
        Ok(path) => path,
        Err(e) => return Judged::Skip(SkipReason::InvalidName, format!("the name {e}")),
    };
    if path.starts_with(&trash_folder()) {
        return Judged::Skip(
            SkipReason::InvalidName,
            ".trash is the trash's own folder".into(),
        );
    }
    if components.iter().any(|c| c.starts_with(TEMP_PREFIX)) {
        return Judged::Skip(
            SkipReason::InvalidName,
            format!("names starting with {TEMP_PREFIX} are reserved for files being written"),
        );
    }
    Judged::Store(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> UserPath {
        UserPath::parse(s).unwrap()
    }

    fn reason(raw: &[u8], target: &str) -> Option<SkipReason> {
        let target = p(target);
        let depth = target.components().count();
        match judge(raw, &target, depth) {
            Judged::Skip(reason, _) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn names_are_stored_under_the_target() {
        let t = p("in");
        assert_eq!(judge(b"a/b.txt", &t, 1), Judged::Store(p("in/a/b.txt")));
        assert_eq!(judge(b"./a//b/", &t, 1), Judged::Store(p("in/a/b")));
        assert_eq!(judge(b"./", &t, 1), Judged::Target);
        assert_eq!(
            judge(b"x.txt", &UserPath::root(), 0),
            Judged::Store(p("x.txt"))
        );
    }

    #[test]
    fn hostile_names_are_skipped_with_their_reason() {
        use SkipReason::*;
        for (raw, target, want) in [
            (&b"../x"[..], "in", UnsafePath),
            (b"a/../../x", "in", UnsafePath),
            (b"/etc/passwd", "in", UnsafePath),
            (b"a/..", "", UnsafePath),
            (b"caf\xe9.txt", "in", NameNotUtf8),
            (b"a\\b.txt", "in", InvalidName),
            (b"a\x01b", "in", InvalidName),
            (b".trash/x", "", InvalidName),
            (b"d/.fileorg-tmp-1234", "in", InvalidName),
        ] {
            assert_eq!(reason(raw, target), Some(want), "{raw:?}");
        }
        // `.trash` below the root is an ordinary name.
        assert_eq!(reason(b".trash/x", "in"), None);
        let long = format!("{}.txt", "n".repeat(256));
        assert_eq!(reason(long.as_bytes(), "in"), Some(InvalidName));
    }

    #[test]
    fn depth_is_bounded_before_length() {
        let deep = "a/".repeat(MAX_DEPTH + 1);
        assert_eq!(reason(deep.as_bytes(), ""), Some(SkipReason::TooDeep));
        // Within the depth bound, a path longer than 4096 bytes is a bad name.
        let long = "a/".repeat(3000);
        assert_eq!(reason(long.as_bytes(), ""), Some(SkipReason::InvalidName));
    }
}
