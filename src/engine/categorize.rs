//! Categorize: decide which category a file belongs to (pipeline step 2).
//!
//! Pure library code: no I/O of its own. The caller hands in the file's path
//! relative to the scan root and, only when asked, the first bytes of the file.
//!
//! # Matching order
//!
//! 1. **Custom rules** (the user's categories), ordered by `priority`
//!    (higher first), then by name (byte order), then by input order. The
//!    first rule that matches wins; a rule matches when one of its globs or
//!    one of its extensions does.
//!    - Globs are case-insensitive. `*` and `?` never cross a `/`; `**` does.
//!      A glob **without** a `/` is matched against the file name alone,
//!      wherever the file is (gitignore style: `invoice-*.pdf` matches
//!      `2024/invoice-7.pdf`); a glob **with** a `/` is matched against the
//!      whole path relative to the scan root (`**/invoice-*.pdf`,
//!      `scans/*.png`). A single leading `/` or `./` anchors the glob at the
//!      root and is removed.
//!    - Extensions are compared case-insensitively, without the dot. A
//!      custom extension may be compound (`tar.gz`, `blend1`): it matches any
//!      file whose name ends with `.` + that extension (and has a non-empty
//!      name before it).
//! 2. **Built-in categories by extension**: the last extension of the file
//!    name, lower-cased (`Photo.JPG` → `jpg`). The compound extensions in
//!    [`COMPOUND_EXTENSIONS`] (`tar.gz`, `tar.bz2`, `tar.xz`, `tar.zst`, …) are
//!    recognized first and are Archives.
//! 3. **Content sniffing** — only for files with no extension or an extension
//!    no built-in category knows — with the `infer` crate on the first
//!    [`SNIFF_BYTES`] bytes of the file. The detected type's extension is
//!    looked up in the built-in table (so a sniffed PDF is a Document even
//!    though `infer` files PDFs under "archive"); otherwise the matcher class
//!    decides (image → Images, video → Videos, …). ELF, PE and Mach-O
//!    binaries are Executables; an HTML/XML/shebang script is Code.
//! 4. Otherwise **Other**.
//!
//! # Decisions on ambiguous extensions
//!
//! Every extension belongs to exactly one built-in category (a unit test
//! enforces it). Choices: `csv`/`tsv` → Spreadsheets; `json`, `xml`, `yaml`,
//! `html`, `ts` (TypeScript, not MPEG transport stream; `m2ts`/`mts` are
//! Videos) → Code; `txt`, `md`, `log` → Documents; `svg`, `eps`, `ai`, `psd`
//! → Images; `djvu`, `cbz`, `cbr` → Ebooks; `key` → Presentations (Keynote);
//! `deb`, `rpm`, `apk`, `jar`, `dmg`, `bin`, shared libraries (`so`, `dll`,
//! `dylib`) and `wasm` → Executables; disk images `iso`/`img` → Archives;
//! `bat`/`cmd`/`ps1` scripts → Code; `mod` → Code (`go.mod`, not the tracker
//! music format); `eot` → Fonts; `pdb` is left out (Palm ebook, debug symbols
//! and protein data all use it).
//!
//! A plain text file with no (or an unknown) extension is **Other**: we do
//! not guess "text means document", because such files are as often
//! `LICENSE`, `Makefile` or data dumps as prose. Text that `infer` recognizes
//! (an HTML or XML prologue, a `#!` shebang) is Code. A sniffed generic OLE
//! container that is not a recognized Office file is Other (it could be an
//! installer or an Outlook message).
//!
//! Invalid custom rules: [`Categorizer::new`] (and [`CustomRule::validate`],
//! for rejecting a category when it is saved) fail on the first bad glob or
//! extension; [`Categorizer::new_skipping_invalid`] drops just the bad values
//! and reports them, for operations run against already stored rules.
//!
//! Dotfiles: a name whose only dot is leading (`.bashrc`, `..x`) has no
//! extension; `.config.json` has the extension `json` (see [`extension`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

/// How many leading bytes of a file [`Categorizer::by_content`] wants.
pub const SNIFF_BYTES: usize = 8192;

/// Compound extensions (`tar.gz`, …) and how a name's extension is found
/// are facts about file names, which the storage layer's free-name search
/// needs too; they live there, and categorizing uses the same ones.
pub use crate::storage::names::{COMPOUND_EXTENSIONS, extension};

pub use crate::domain::BuiltIn;

impl fmt::Display for BuiltIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lower-case extension → built-in category, built once.
static BUILTIN_BY_EXTENSION: LazyLock<HashMap<&'static str, BuiltIn>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for b in BuiltIn::ALL {
        for &ext in b.extensions() {
            map.insert(ext, b);
        }
    }
    map
});

/// The built-in category of a lower-case extension (without the dot).
pub fn builtin_for_extension(ext_lower: &str) -> Option<BuiltIn> {
    BUILTIN_BY_EXTENSION.get(ext_lower).copied()
}

/// The file name: the part of a `/`-separated path after the last `/`.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A category assigned to a file: its display name and whether it is built in.
/// Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Category(Kind);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    BuiltIn(BuiltIn),
    Custom(Arc<str>),
}

impl Category {
    /// A built-in category.
    pub const fn built_in(b: BuiltIn) -> Category {
        Category(Kind::BuiltIn(b))
    }

    /// A custom (user-defined) category with this display name.
    pub fn custom(name: impl Into<Arc<str>>) -> Category {
        Category(Kind::Custom(name.into()))
    }

    /// The display name, as stored in `file_records.category` and rendered
    /// by `{category}`.
    pub fn name(&self) -> &str {
        match &self.0 {
            Kind::BuiltIn(b) => b.name(),
            Kind::Custom(name) => name,
        }
    }
}

#[cfg(test)]
impl Category {
    fn is_built_in(&self) -> bool {
        matches!(self.0, Kind::BuiltIn(_))
    }

    fn as_built_in(&self) -> Option<BuiltIn> {
        match self.0 {
            Kind::BuiltIn(b) => Some(b),
            Kind::Custom(_) => None,
        }
    }
}

impl From<BuiltIn> for Category {
    fn from(b: BuiltIn) -> Category {
        Category::built_in(b)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user's custom category: the domain's (`domain::rules`), checked and
/// applied here.
pub use crate::domain::CustomRule;

impl CustomRule {
    /// Checks the rule's globs and extensions, as [`Categorizer::new`] does;
    /// usable to reject a bad category when it is created.
    pub fn validate(&self) -> Result<(), CategorizeError> {
        for ext in &self.extensions {
            normalize_extension(&self.name, ext)?;
        }
        for glob in &self.globs {
            compile_glob(&self.name, glob)?;
        }
        Ok(())
    }
}

/// A custom rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategorizeError {
    #[error("category \"{rule}\": invalid glob \"{glob}\": {reason}")]
    InvalidGlob {
        rule: String,
        glob: String,
        reason: String,
    },
    #[error("category \"{rule}\": invalid extension \"{extension}\": {reason}")]
    InvalidExtension {
        rule: String,
        extension: String,
        reason: &'static str,
    },
}

/// Assigns categories; built once per operation from the user's custom rules.
/// `Send + Sync`, so it can be shared between tasks.
#[derive(Debug, Clone)]
pub struct Categorizer {
    /// Rule names in precedence order; a match's rule index points here.
    rules: Vec<Arc<str>>,
    /// Lower-case (possibly compound) extension → best rule index.
    custom_extensions: HashMap<String, usize>,
    /// Globs matched against the file name, and their rule indexes.
    name_globs: GlobSet,
    name_glob_rules: Vec<usize>,
    /// Globs matched against the whole relative path, and their rule indexes.
    path_globs: GlobSet,
    path_glob_rules: Vec<usize>,
}

impl Default for Categorizer {
    /// Built-in categories only.
    fn default() -> Self {
        Categorizer::new(&[]).expect("no custom rules cannot fail")
    }
}

impl Categorizer {
    /// Builds a categorizer from the user's custom rules (in any order).
    /// Fails on the first invalid glob or extension, naming rule and value.
    pub fn new(custom: &[CustomRule]) -> Result<Categorizer, CategorizeError> {
        Categorizer::build(custom, false).map(|(categorizer, _)| categorizer)
    }

    /// Like [`Categorizer::new`], but an invalid glob or extension is left
    /// out (and returned) instead of failing: the rest of that rule and all
    /// other rules still apply. For running operations against stored rules.
    pub fn new_skipping_invalid(custom: &[CustomRule]) -> (Categorizer, Vec<CategorizeError>) {
        Categorizer::build(custom, true).expect("skipping mode does not fail")
    }

    fn build(
        custom: &[CustomRule],
        skip_invalid: bool,
    ) -> Result<(Categorizer, Vec<CategorizeError>), CategorizeError> {
        let mut skipped = Vec::new();
        let mut ordered: Vec<&CustomRule> = custom.iter().collect();
        // Stable: equal priority and name keep their input order.
        ordered.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });

        let mut rules = Vec::with_capacity(ordered.len());
        let mut custom_extensions = HashMap::new();
        let mut name_globs = GlobSetBuilder::new();
        let mut name_glob_rules = Vec::new();
        let mut path_globs = GlobSetBuilder::new();
        let mut path_glob_rules = Vec::new();

        for (index, rule) in ordered.iter().enumerate() {
            rules.push(Arc::<str>::from(rule.name.as_str()));
            for ext in &rule.extensions {
                let Some(ext) = keep(
                    normalize_extension(&rule.name, ext),
                    skip_invalid,
                    &mut skipped,
                )?
                else {
                    continue;
                };
                // The first (highest-precedence) rule keeps the extension.
                custom_extensions.entry(ext).or_insert(index);
            }
            for raw in &rule.globs {
                let Some((glob, whole_path)) =
                    keep(compile_glob(&rule.name, raw), skip_invalid, &mut skipped)?
                else {
                    continue;
                };
                if whole_path {
                    path_globs.add(glob);
                    path_glob_rules.push(index);
                } else {
                    name_globs.add(glob);
                    name_glob_rules.push(index);
                }
            }
        }

        let build = |builder: GlobSetBuilder| {
            builder.build().map_err(|e| CategorizeError::InvalidGlob {
                rule: String::from("(all categories)"),
                glob: String::new(),
                reason: e.to_string(),
            })
        };
        let categorizer = Categorizer {
            rules,
            custom_extensions,
            name_globs: keep(build(name_globs), skip_invalid, &mut skipped)?
                .unwrap_or_else(GlobSet::empty),
            name_glob_rules,
            path_globs: keep(build(path_globs), skip_invalid, &mut skipped)?
                .unwrap_or_else(GlobSet::empty),
            path_glob_rules,
        };
        Ok((categorizer, skipped))
    }

    /// The category decided from the path alone (`/`-separated, relative to
    /// the scan root), without any I/O. `None` means the name is not enough:
    /// the file has no extension or one no category knows, and its content
    /// should be sniffed with [`Categorizer::by_content`].
    pub fn by_name(&self, relative_path: &str) -> Option<Category> {
        let name = file_name(relative_path);
        if let Some(index) = self.custom_match(relative_path, name) {
            return Some(Category::custom(Arc::clone(&self.rules[index])));
        }
        let body = name.trim_start_matches('.');
        let lower = body.to_lowercase();
        if COMPOUND_EXTENSIONS
            .iter()
            .any(|c| lower.len() > c.len() + 1 && lower.ends_with(c) && is_dot_before(&lower, c))
        {
            return Some(Category::built_in(BuiltIn::Archives));
        }
        let ext = extension(&lower)?;
        builtin_for_extension(ext).map(Category::built_in)
    }

    /// The category of a file from its first bytes (up to [`SNIFF_BYTES`]);
    /// Other when nothing is recognized (plain text included).
    pub fn by_content(&self, head: &[u8]) -> Category {
        Category::built_in(sniff(head))
    }

    /// The category of a file: [`Categorizer::by_name`], and only when that is
    /// not enough, `head()` (which should return the first [`SNIFF_BYTES`]
    /// bytes, or `None` if the file could not be read) and
    /// [`Categorizer::by_content`]. Unreadable files are Other.
    pub fn categorize(
        &self,
        relative_path: &str,
        head: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Category {
        if let Some(category) = self.by_name(relative_path) {
            return category;
        }
        match head() {
            Some(bytes) => self.by_content(&bytes),
            None => Category::built_in(BuiltIn::Other),
        }
    }

    /// The index of the best custom rule matching this file, if any.
    fn custom_match(&self, relative_path: &str, name: &str) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        let mut best: Option<usize> = None;
        let mut consider = |index: usize| {
            if best.is_none_or(|b| index < b) {
                best = Some(index);
            }
        };

        if !self.custom_extensions.is_empty() {
            // Every suffix after a dot is a candidate extension: "a.tar.gz"
            // offers "gz" and "tar.gz".
            let lower = name.trim_start_matches('.').to_lowercase();
            for (dot, _) in lower.match_indices('.') {
                if let Some(&index) = self.custom_extensions.get(&lower[dot + 1..]) {
                    consider(index);
                }
            }
        }
        if !self.name_glob_rules.is_empty() {
            for i in self.name_globs.matches_candidate(&Candidate::new(name)) {
                consider(self.name_glob_rules[i]);
            }
        }
        if !self.path_glob_rules.is_empty() {
            for i in self
                .path_globs
                .matches_candidate(&Candidate::new(relative_path))
            {
                consider(self.path_glob_rules[i]);
            }
        }
        best
    }
}

/// Passes a value through; an error fails, or with `skip` is collected.
fn keep<T>(
    result: Result<T, CategorizeError>,
    skip: bool,
    skipped: &mut Vec<CategorizeError>,
) -> Result<Option<T>, CategorizeError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if skip => {
            skipped.push(error);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Whether `lower` ends with "." + `suffix`.
fn is_dot_before(lower: &str, suffix: &str) -> bool {
    lower.as_bytes()[lower.len() - suffix.len() - 1] == b'.'
}

/// Lower-cases a custom extension and removes a leading dot.
fn normalize_extension(rule: &str, raw: &str) -> Result<String, CategorizeError> {
    let invalid = |reason| CategorizeError::InvalidExtension {
        rule: rule.to_owned(),
        extension: raw.to_owned(),
        reason,
    };
    let ext = raw.trim();
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    if ext.is_empty() {
        return Err(invalid("it is empty"));
    }
    if ext.contains(['/', '\\']) || ext.chars().any(char::is_control) {
        return Err(invalid("it must not contain slashes or control characters"));
    }
    if ext.starts_with('.') || ext.ends_with('.') || ext.contains("..") {
        return Err(invalid("dots may only separate parts, as in tar.gz"));
    }
    Ok(ext.to_lowercase())
}

/// Compiles one custom glob; the flag says whether it is matched against the
/// whole relative path (it contains a `/`) rather than the file name.
fn compile_glob(rule: &str, raw: &str) -> Result<(globset::Glob, bool), CategorizeError> {
    let invalid = |reason: String| CategorizeError::InvalidGlob {
        rule: rule.to_owned(),
        glob: raw.to_owned(),
        reason,
    };
    let anchored = raw.strip_prefix("./").or_else(|| raw.strip_prefix('/'));
    let pattern = anchored.unwrap_or(raw);
    if pattern.trim().is_empty() {
        return Err(invalid(String::from("it is empty")));
    }
    if pattern.contains('\0') {
        return Err(invalid(String::from("it contains a NUL character")));
    }
    let whole_path = anchored.is_some() || pattern.contains('/');
    let glob = GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .map_err(|e| invalid(e.kind().to_string()))?;
    Ok((glob, whole_path))
}

/// Maps `infer`'s verdict on the head of a file to a built-in category.
fn sniff(head: &[u8]) -> BuiltIn {
    let Some(kind) = infer::get(head) else {
        return BuiltIn::Other;
    };
    let ext = kind.extension().to_ascii_lowercase();
    // Types `infer` reports whose extension is not (or misleadingly) in the
    // table: native binaries, and a few containers not worth a category.
    match ext.as_str() {
        "elf" | "exe" | "dll" | "mach" | "obj" | "dex" | "dey" => return BuiltIn::Executables,
        // Generic OLE compound file (not a recognized .doc/.xls/.ppt).
        "msi" => return BuiltIn::Other,
        "sqlite" | "nes" | "swf" | "der" | "pem" | "bc" => return BuiltIn::Other,
        "dcm" | "dwg" => return BuiltIn::Images,
        _ => {}
    }
    if let Some(b) = builtin_for_extension(&ext) {
        return b;
    }
    match kind.matcher_type() {
        infer::MatcherType::Image => BuiltIn::Images,
        infer::MatcherType::Video => BuiltIn::Videos,
        infer::MatcherType::Audio => BuiltIn::Audio,
        infer::MatcherType::Archive => BuiltIn::Archives,
        infer::MatcherType::Font => BuiltIn::Fonts,
        infer::MatcherType::Doc => BuiltIn::Documents,
        infer::MatcherType::Book => BuiltIn::Ebooks,
        infer::MatcherType::Text => BuiltIn::Code,
        infer::MatcherType::App | infer::MatcherType::Custom => BuiltIn::Other,
    }
}

/// Each scanned file's category, by index: 4 bytes a file and one string
/// per distinct name (a string, or even a shared pointer, per file was 16
/// bytes or more: docs/organize.md, "Memory").
#[derive(Debug, Default)]
pub struct FileCategories {
    names: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    of_file: Vec<u32>,
}

impl FileCategories {
    pub fn with_capacity(files: usize) -> FileCategories {
        FileCategories {
            of_file: Vec::with_capacity(files),
            ..Default::default()
        }
    }

    /// Adds the next file's category.
    pub fn push(&mut self, name: &str) {
        let at = match self.index.get(name) {
            Some(&at) => at,
            None => {
                let at = u32::try_from(self.names.len()).expect("under 2^32 category names");
                self.names.push(name.to_string());
                self.index.insert(name.to_string(), at);
                at
            }
        };
        self.of_file.push(at);
    }

    /// File `i`'s category.
    pub fn get(&self, i: usize) -> &str {
        &self.names[self.of_file[i] as usize]
    }
}

/// The first bytes of a scanned file, for magic-bytes sniffing: opened at
/// the moment of use through no symlink, and only if it is still the file
/// the scan saw ([`crate::storage::UserRoot::open_read_exact`]).
pub fn read_head(
    root: &crate::storage::UserRoot,
    scanned: &super::scan::ScannedFile,
) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = root
        .open_read_exact(&scanned.path, Some(&scanned.fingerprint))
        .ok()?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.take(SNIFF_BYTES as u64).read_to_end(&mut head).ok()?;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::names::compound_extension;
    use std::cell::Cell;
    use std::collections::HashSet;

    fn rule(name: &str, exts: &[&str], globs: &[&str], priority: i32) -> CustomRule {
        CustomRule {
            name: name.into(),
            extensions: exts.iter().map(|s| s.to_string()).collect(),
            globs: globs.iter().map(|s| s.to_string()).collect(),
            priority,
        }
    }

    fn name_of(c: &Categorizer, path: &str) -> Option<String> {
        c.by_name(path).map(|c| c.name().to_owned())
    }

    #[test]
    fn no_extension_is_listed_twice() {
        let mut seen: HashMap<&str, BuiltIn> = HashMap::new();
        for b in BuiltIn::ALL {
            for &ext in b.extensions() {
                assert_eq!(ext, ext.to_lowercase(), "{ext} must be lower-case");
                assert!(!ext.starts_with('.') && !ext.is_empty(), "{ext:?}");
                if let Some(prev) = seen.insert(ext, b) {
                    panic!("{ext} is listed in both {prev} and {b}");
                }
            }
        }
        assert!(seen.len() > 300, "generous sets: {}", seen.len());
        assert!(BuiltIn::Other.extensions().is_empty());
    }

    #[test]
    fn built_in_names_and_ids() {
        let names: HashSet<_> = BuiltIn::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), 12);
        for b in BuiltIn::ALL {
            assert_eq!(b.id(), b.name().to_lowercase());
            assert_eq!(BuiltIn::from_name(b.id()), Some(b));
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!(BuiltIn::from_name("Nope"), None);
    }

    #[test]
    fn ambiguous_choices() {
        let c = Categorizer::default();
        for (path, want) in [
            ("data.csv", "Spreadsheets"),
            ("x.tsv", "Spreadsheets"),
            ("package.json", "Code"),
            ("notes.txt", "Documents"),
            ("README.md", "Documents"),
            ("logo.svg", "Images"),
            ("main.ts", "Code"),
            ("clip.m2ts", "Videos"),
            ("talk.key", "Presentations"),
            ("book.djvu", "Ebooks"),
            ("tool.deb", "Executables"),
            ("report.pdf", "Documents"),
            ("font.woff2", "Fonts"),
        ] {
            assert_eq!(name_of(&c, path).as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn extension_matching_is_case_insensitive() {
        let c = Categorizer::default();
        assert_eq!(name_of(&c, "DCIM/IMG_0001.JPG").as_deref(), Some("Images"));
        assert_eq!(name_of(&c, "a/b/Song.Mp3").as_deref(), Some("Audio"));
        assert_eq!(name_of(&c, "Movie.MKV").as_deref(), Some("Videos"));
        assert!(c.by_name("x.JPG").unwrap().is_built_in());
        assert_eq!(
            c.by_name("x.JPG").unwrap().as_built_in(),
            Some(BuiltIn::Images)
        );
    }

    #[test]
    fn double_extensions_are_archives() {
        let c = Categorizer::default();
        for path in [
            "backup.tar.gz",
            "b/Backup.TAR.BZ2",
            "x.tar.xz",
            "y.tar.zst",
            "z.tgz",
        ] {
            assert_eq!(name_of(&c, path).as_deref(), Some("Archives"), "{path}");
        }
        assert_eq!(compound_extension("backup.TAR.gz"), Some("TAR.gz"));
        assert_eq!(compound_extension("backup.gz"), Some("gz"));
        assert_eq!(compound_extension(".tar.gz"), Some("gz"));
        assert_eq!(compound_extension("photo.jpg"), Some("jpg"));
        assert_eq!(compound_extension("README"), None);
    }

    #[test]
    fn extension_helper() {
        assert_eq!(extension("a.b.c"), Some("c"));
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("..hidden"), None);
        assert_eq!(extension(".config.json"), Some("json"));
        assert_eq!(extension("file."), None);
        assert_eq!(extension("README"), None);
        assert_eq!(extension(""), None);
        assert_eq!(file_name("a/b/c.txt"), "c.txt");
        assert_eq!(file_name("c.txt"), "c.txt");
    }

    #[test]
    fn dotfiles_and_unknown_extensions_need_sniffing() {
        let c = Categorizer::default();
        assert_eq!(c.by_name(".bashrc"), None);
        assert_eq!(c.by_name("README"), None);
        assert_eq!(c.by_name("dir.d/README"), None);
        assert_eq!(c.by_name("data.weird"), None);
        assert_eq!(c.by_name("file."), None);
        assert_eq!(name_of(&c, ".config.json").as_deref(), Some("Code"));
    }

    #[test]
    fn custom_rules_take_precedence_over_built_ins() {
        let c = Categorizer::new(&[rule("Photos", &["JPG", ".png"], &[], 0)]).unwrap();
        let got = c.by_name("a/x.jpg").unwrap();
        assert_eq!(got.name(), "Photos");
        assert!(!got.is_built_in());
        assert_eq!(got.as_built_in(), None);
        assert_eq!(name_of(&c, "x.PNG").as_deref(), Some("Photos"));
        assert_eq!(name_of(&c, "x.gif").as_deref(), Some("Images"));
    }

    #[test]
    fn custom_compound_extension() {
        let c = Categorizer::new(&[rule("Backups", &["tar.gz"], &[], 0)]).unwrap();
        assert_eq!(name_of(&c, "x.TAR.GZ").as_deref(), Some("Backups"));
        assert_eq!(name_of(&c, "x.gz").as_deref(), Some("Archives"));
        // A custom extension can also claim names the built-ins don't know.
        let c = Categorizer::new(&[rule("Blender", &["blend"], &[], 0)]).unwrap();
        assert_eq!(name_of(&c, "scene.blend").as_deref(), Some("Blender"));
        assert_eq!(c.by_name("scene.blend1"), None);
    }

    #[test]
    fn priority_then_name_orders_custom_rules() {
        let rules = [
            rule("Zeta", &["pdf"], &[], 0),
            rule("Alpha", &["pdf"], &[], 0),
            rule("Invoices", &[], &["invoice-*"], 10),
        ];
        let c = Categorizer::new(&rules).unwrap();
        assert_eq!(name_of(&c, "x.pdf").as_deref(), Some("Alpha"));
        assert_eq!(
            name_of(&c, "2024/Invoice-7.pdf").as_deref(),
            Some("Invoices")
        );
        let low = [
            rule("Invoices", &[], &["invoice-*"], -1),
            rule("Pdfs", &["pdf"], &[], 0),
        ];
        let c = Categorizer::new(&low).unwrap();
        assert_eq!(name_of(&c, "invoice-7.pdf").as_deref(), Some("Pdfs"));
        assert_eq!(name_of(&c, "invoice-7.txt").as_deref(), Some("Invoices"));
    }

    #[test]
    fn glob_rules() {
        let rules = [
            rule("Scans", &[], &["scans/**"], 0),
            rule("Invoices", &[], &["**/invoice-*.pdf"], 0),
            rule("TopLevel", &[], &["/top-*.txt"], 0),
            rule("Shots", &[], &["Screenshot*"], 0),
        ];
        let c = Categorizer::new(&rules).unwrap();
        assert_eq!(name_of(&c, "Scans/a/b.png").as_deref(), Some("Scans"));
        assert_eq!(name_of(&c, "other/scans/b.png").as_deref(), Some("Images"));
        assert_eq!(name_of(&c, "invoice-1.PDF").as_deref(), Some("Invoices"));
        assert_eq!(
            name_of(&c, "a/b/INVOICE-2.pdf").as_deref(),
            Some("Invoices")
        );
        assert_eq!(name_of(&c, "top-1.txt").as_deref(), Some("TopLevel"));
        assert_eq!(name_of(&c, "sub/top-1.txt").as_deref(), Some("Documents"));
        // A glob without '/' matches the file name anywhere.
        assert_eq!(
            name_of(&c, "x/y/screenshot 1.png").as_deref(),
            Some("Shots")
        );
        // ... but '*' does not match a directory part of the name.
        assert_eq!(
            name_of(&c, "Screenshots/cat.png").as_deref(),
            Some("Images")
        );
        // Globs also categorize files without an extension.
        assert_eq!(name_of(&c, "Scans/README").as_deref(), Some("Scans"));
    }

    #[test]
    fn invalid_glob_is_an_error_naming_rule_and_glob() {
        let err = Categorizer::new(&[
            rule("Fine", &[], &["*.ok"], 0),
            rule("Broken", &[], &["a[b"], 0),
        ])
        .unwrap_err();
        match &err {
            CategorizeError::InvalidGlob { rule, glob, .. } => {
                assert_eq!(rule, "Broken");
                assert_eq!(glob, "a[b");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("Broken") && msg.contains("a[b"), "{msg}");
        assert!(Categorizer::new(&[rule("E", &[], &[""], 0)]).is_err());
        assert!(rule("B", &[], &["{a,b"], 0).validate().is_err());
        assert!(rule("B", &[], &["**/*.{a,b}"], 0).validate().is_ok());
    }

    #[test]
    fn skipping_invalid_keeps_the_rest() {
        let rules = [
            rule("Mixed", &["", "raw2"], &["a[b", "keep-*"], 0),
            rule("Good", &["pdf"], &[], 0),
        ];
        assert!(Categorizer::new(&rules).is_err());
        let (c, skipped) = Categorizer::new_skipping_invalid(&rules);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(name_of(&c, "x.raw2").as_deref(), Some("Mixed"));
        assert_eq!(name_of(&c, "keep-1.txt").as_deref(), Some("Mixed"));
        assert_eq!(name_of(&c, "x.pdf").as_deref(), Some("Good"));
    }

    #[test]
    fn invalid_extension_is_an_error() {
        for bad in ["", ".", "a/b", "a..b", "x.", "\n"] {
            let err = Categorizer::new(&[rule("R", &[bad], &[], 0)]).unwrap_err();
            assert!(
                matches!(err, CategorizeError::InvalidExtension { .. }),
                "{bad:?}"
            );
            assert!(err.to_string().contains("\"R\""));
        }
    }

    fn elf_header() -> Vec<u8> {
        let mut h = vec![0x7F, b'E', b'L', b'F', 2, 1, 1, 0];
        h.resize(64, 0);
        h
    }

    #[test]
    fn sniffing_magic_bytes() {
        let c = Categorizer::default();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        assert_eq!(c.by_content(png), Category::built_in(BuiltIn::Images));
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
        assert_eq!(c.by_content(pdf), Category::built_in(BuiltIn::Documents));
        let zip = b"PK\x03\x04\x14\0\0\0\x08\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x05\0\0\0a.txt";
        assert_eq!(c.by_content(zip), Category::built_in(BuiltIn::Archives));
        assert_eq!(
            c.by_content(&elf_header()),
            Category::built_in(BuiltIn::Executables)
        );
        let pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
        assert_eq!(c.by_content(pe), Category::built_in(BuiltIn::Executables));
        let gzip = b"\x1f\x8b\x08\0\0\0\0\0\0\x03";
        assert_eq!(c.by_content(gzip), Category::built_in(BuiltIn::Archives));
        let shebang = b"#!/bin/sh\necho hi\n";
        assert_eq!(c.by_content(shebang), Category::built_in(BuiltIn::Code));
    }

    #[test]
    fn plain_text_and_unknown_bytes_are_other() {
        let c = Categorizer::default();
        let text = b"Just some notes.\nNothing special here.\n";
        assert_eq!(c.by_content(text), Category::built_in(BuiltIn::Other));
        assert_eq!(c.by_content(&[]), Category::built_in(BuiltIn::Other));
        assert_eq!(
            c.by_content(&[0u8, 1, 2, 3, 4, 5]),
            Category::built_in(BuiltIn::Other)
        );
        assert_eq!(
            c.categorize("LICENSE", || Some(text.to_vec())).name(),
            "Other"
        );
    }

    #[test]
    fn head_is_read_only_when_the_name_is_not_enough() {
        let c = Categorizer::new(&[rule("Mine", &[], &["mine/*"], 0)]).unwrap();
        let calls = Cell::new(0);
        let head = || {
            calls.set(calls.get() + 1);
            Some(elf_header())
        };
        assert_eq!(c.categorize("photo.jpeg", head).name(), "Images");
        assert_eq!(c.categorize("x.tar.gz", head).name(), "Archives");
        assert_eq!(c.categorize("mine/tool", head).name(), "Mine");
        assert_eq!(calls.get(), 0);
        assert_eq!(c.categorize("bin/tool", head).name(), "Executables");
        assert_eq!(c.categorize("tool.unknownext", head).name(), "Executables");
        assert_eq!(calls.get(), 2);
        assert_eq!(c.categorize("gone", || None).name(), "Other");
    }

    #[test]
    fn category_is_cheap_and_comparable() {
        let a = Category::custom("Taxes");
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "Taxes");
        assert_ne!(Category::custom("Images"), BuiltIn::Images.into());
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Categorizer>();
        assert_send_sync::<Category>();
    }
}
