//! Names for a file whose wanted name is taken: `name (1).ext`,
//! `name (2).ext`, …, and the one search for the first free one.
//!
//! Every place that must not overwrite and may rename (an upload or a
//! restore under the RENAME policy, the organize planner and its apply, the
//! recovery of a move cut short) goes through [`find_free_name`], so they
//! all try the same names in the same order and give up at the same bound,
//! [`MAX_SUFFIX`]. That matters beyond tidiness: the recovery finds where an
//! interrupted move went by walking the very names the move tried.
//!
//! How a name is varied ([`with_suffix`]): ` (n)` goes before the extension,
//! keeping compound archive extensions together (`backup (1).tar.gz`, see
//! [`COMPOUND_EXTENSIONS`]); a dotfile or a name without extension gets it at
//! the end (`.bashrc (1)`, `README (1)`). The base is shortened when needed so
//! the result still fits in [`MAX_NAME_BYTES`] bytes.

use super::path::{MAX_NAME_BYTES, PathError, UserPath};

/// The most suffixes tried before a name counts as unavailable: `name (1)`
/// to `name (10000)`. A folder holding ten thousand variants of one name is
/// not one a person sorts by hand; stopping there bounds the cost of a
/// search (one `lstat` or one rename attempt per name) instead of walking
/// an unbounded sequence.
pub const MAX_SUFFIX: u32 = 10_000;

/// Compound (double) extensions recognized as one unit, lower-case without
/// the leading dot. They are all archives (the categorizer files them so),
/// and [`with_suffix`] keeps them together (`backup (1).tar.gz`).
pub const COMPOUND_EXTENSIONS: &[&str] = &[
    "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "tar.lz", "tar.lzma", "tar.lz4", "tar.z",
];

/// The last extension of a file name, as written (not lower-cased), without
/// the dot. Leading dots do not start an extension (`.bashrc` has none,
/// `.config.json` has `json`), and a trailing dot is no extension (`file.`).
pub fn extension(name: &str) -> Option<&str> {
    let body = name.trim_start_matches('.');
    let dot = body.rfind('.')?;
    let ext = &body[dot + 1..];
    (!ext.is_empty()).then_some(ext)
}

/// The extension to keep together when a name is changed: one of
/// [`COMPOUND_EXTENSIONS`] when the name ends with it (case-insensitively,
/// and something precedes it), otherwise [`extension`]. As written, without
/// the leading dot.
pub fn compound_extension(name: &str) -> Option<&str> {
    let body = name.trim_start_matches('.');
    for compound in COMPOUND_EXTENSIONS {
        // "." + compound, with at least one character before the dot.
        let needed = compound.len() + 1;
        if body.len() > needed && body.is_char_boundary(body.len() - needed) {
            let tail = &body[body.len() - needed..];
            if tail.as_bytes()[0] == b'.' && tail[1..].eq_ignore_ascii_case(compound) {
                return Some(&name[name.len() - compound.len()..]);
            }
        }
    }
    extension(name)
}

/// The n-th alternative for a taken name: ` (n)` before the extension
/// (compound archive extensions kept whole), or at the end for dotfiles and
/// names without one. `n == 0` returns the name unchanged. The base is
/// shortened (at a character boundary) so the result fits in
/// [`MAX_NAME_BYTES`] bytes when the name did.
pub fn with_suffix(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let suffix = format!(" ({n})");
    let (base, ext) = match compound_extension(name) {
        Some(ext) => (&name[..name.len() - ext.len() - 1], Some(ext)),
        None => (name, None),
    };
    let ext_len = ext.map_or(0, |e| e.len() + 1);
    let (base, ext) = if suffix.len() + ext_len < MAX_NAME_BYTES {
        (truncate(base, MAX_NAME_BYTES - suffix.len() - ext_len), ext)
    } else {
        // An absurdly long extension: treat the whole name as the base.
        (
            truncate(name, MAX_NAME_BYTES.saturating_sub(suffix.len())),
            None,
        )
    };
    let mut out = String::with_capacity(base.len() + suffix.len() + ext_len);
    out.push_str(base);
    out.push_str(&suffix);
    if let Some(ext) = ext {
        out.push('.');
        out.push_str(ext);
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes ending at a character
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The first name for `wanted` that `probe` accepts: `wanted` itself, then
/// [`with_suffix`] 1, 2, … [`MAX_SUFFIX`] in the same folder, in that order.
///
/// `probe` answers `Ok(true)` to take a name, `Ok(false)` when it is taken.
/// It may *claim* the name (a rename or publish with `RENAME_NOREPLACE`,
/// which takes a free name atomically: nobody can slip in between a check
/// and the use), or only look (the planner, which checks its own plan in
/// memory as well as the disk). An error from `probe` ends the search.
///
/// `Ok(None)` when none of the names was accepted. A name that cannot be a
/// path (the suffix makes the whole path too long) ends the search with
/// that [`PathError`]: the later, longer names could not be paths either.
/// The root has no name to vary: it is tried as it is, once.
pub fn find_free_name<E: From<PathError>>(
    wanted: &UserPath,
    mut probe: impl FnMut(&UserPath) -> Result<bool, E>,
) -> Result<Option<UserPath>, E> {
    if probe(wanted)? {
        return Ok(Some(wanted.clone()));
    }
    let Some((parent, name)) = wanted.split_last() else {
        return Ok(None);
    };
    for n in 1..=MAX_SUFFIX {
        let candidate = parent.join(&with_suffix(name, n))?;
        if probe(&candidate)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn p(s: &str) -> UserPath {
        UserPath::parse(s).unwrap()
    }

    /// A search that only looks, against a set of taken names.
    fn free_among(wanted: &str, taken: &[&str]) -> Option<UserPath> {
        let taken: HashSet<UserPath> = taken.iter().map(|t| p(t)).collect();
        find_free_name(&p(wanted), |c| Ok::<_, PathError>(!taken.contains(c))).unwrap()
    }

    #[test]
    fn suffix_naming() {
        for (name, n, want) in [
            ("photo.jpg", 1, "photo (1).jpg"),
            ("photo.jpg", 2, "photo (2).jpg"),
            ("photo.jpg", 0, "photo.jpg"),
            ("archive.tar.gz", 1, "archive (1).tar.gz"),
            ("Archive.TAR.BZ2", 3, "Archive (3).TAR.BZ2"),
            ("x.tar.xz", 1, "x (1).tar.xz"),
            ("x.tar.zst", 1, "x (1).tar.zst"),
            ("x.gz", 1, "x (1).gz"),
            ("my.file.name.txt", 12, "my.file.name (12).txt"),
            (".bashrc", 1, ".bashrc (1)"),
            (".config.json", 1, ".config (1).json"),
            (".tar.gz", 1, ".tar (1).gz"),
            ("README", 1, "README (1)"),
            ("file.", 1, "file. (1)"),
            ("photo (1).jpg", 1, "photo (1) (1).jpg"),
            ("x", u32::MAX, "x (4294967295)"),
        ] {
            assert_eq!(with_suffix(name, n), want, "{name} {n}");
        }
    }

    #[test]
    fn suffix_keeps_names_within_name_max() {
        let long = format!("{}.jpg", "é".repeat(125)); // 254 bytes
        let out = with_suffix(&long, 7);
        assert!(out.len() <= MAX_NAME_BYTES, "{}", out.len());
        assert!(out.ends_with(" (7).jpg"), "{out}");
        let huge_ext = format!("a.{}", "e".repeat(252));
        let out = with_suffix(&huge_ext, 1);
        assert!(
            out.len() <= MAX_NAME_BYTES && out.ends_with(" (1)"),
            "{out}"
        );
        for n in 1..50 {
            assert_ne!(with_suffix(&long, n), with_suffix(&long, n + 1));
        }
    }

    #[test]
    fn the_first_free_name_is_taken_in_order() {
        assert_eq!(free_among("a/photo.jpg", &[]), Some(p("a/photo.jpg")));
        assert_eq!(
            free_among("a/photo.jpg", &["a/photo.jpg"]),
            Some(p("a/photo (1).jpg"))
        );
        // A gap is used: names are tried in order, not counted.
        assert_eq!(
            free_among(
                "a/photo.jpg",
                &["a/photo.jpg", "a/photo (1).jpg", "a/photo (3).jpg"]
            ),
            Some(p("a/photo (2).jpg"))
        );
        // Taken elsewhere does not count.
        assert_eq!(
            free_among("a/photo.jpg", &["a/photo.jpg", "b/photo (1).jpg"]),
            Some(p("a/photo (1).jpg"))
        );
    }

    #[test]
    fn extensions_and_dotfiles_keep_their_shape() {
        assert_eq!(
            free_among("backup.tar.gz", &["backup.tar.gz"]),
            Some(p("backup (1).tar.gz"))
        );
        assert_eq!(
            free_among("d/.bashrc", &["d/.bashrc", "d/.bashrc (1)"]),
            Some(p("d/.bashrc (2)"))
        );
        assert_eq!(
            free_among(".config.json", &[".config.json"]),
            Some(p(".config (1).json"))
        );
        assert_eq!(free_among("README", &["README"]), Some(p("README (1)")));
    }

    #[test]
    fn the_search_stops_at_the_bound() {
        let mut tried = Vec::new();
        let found = find_free_name(&p("x/a.txt"), |c| {
            tried.push(c.clone());
            Ok::<_, PathError>(false)
        })
        .unwrap();
        assert_eq!(found, None);
        assert_eq!(tried.len(), MAX_SUFFIX as usize + 1);
        assert_eq!(tried.last(), Some(&p(&format!("x/a ({MAX_SUFFIX}).txt"))));
        // The last name of the bound is still found.
        let last = p(&format!("x/a ({MAX_SUFFIX}).txt"));
        let found = find_free_name(&p("x/a.txt"), |c| Ok::<_, PathError>(*c == last));
        assert_eq!(found.unwrap(), Some(last));
    }

    #[test]
    fn the_probe_decides_and_its_errors_end_the_search() {
        #[derive(Debug, PartialEq)]
        enum Probe {
            Path(PathError),
            Refused,
        }
        impl From<PathError> for Probe {
            fn from(e: PathError) -> Probe {
                Probe::Path(e)
            }
        }
        let mut calls = 0;
        let result = find_free_name(&p("a.txt"), |_| {
            calls += 1;
            if calls == 3 {
                Err(Probe::Refused)
            } else {
                Ok(false)
            }
        });
        assert_eq!(result, Err(Probe::Refused));
        assert_eq!(calls, 3);
        // A suffix that makes the path too long is an error, not a skip.
        // 4,095 bytes: the name fits, `… (1).txt` would be 4,099.
        let deep = p(&format!(
            "{}/{}.txt",
            vec!["d".repeat(250); 16].join("/"),
            "a".repeat(75)
        ));
        assert_eq!(deep.as_str().len(), 4095);
        let result = find_free_name(&deep, |_| Ok::<_, Probe>(false));
        assert_eq!(result, Err(Probe::Path(PathError::TooLong)));
        // The root is tried as it is.
        let mut roots = 0;
        let result = find_free_name(&UserPath::root(), |_| {
            roots += 1;
            Ok::<_, PathError>(false)
        });
        assert_eq!((result, roots), (Ok(None), 1));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Conflict names stay single file names within NAME_MAX.
            #[test]
            fn suffixed_names_stay_names(name in "[^/\\x00]{1,255}", n in 1u32..10_000) {
                prop_assume!(name.len() <= MAX_NAME_BYTES && name != "." && name != "..");
                let out = with_suffix(&name, n);
                prop_assert!(out.len() <= MAX_NAME_BYTES, "{out:?}");
                prop_assert!(!out.contains('/'));
                let expected = format!("({n})");
                prop_assert!(out.contains(&expected));
            }
        }
    }
}
