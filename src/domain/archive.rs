//! Archives taken in (ImportArchive): their formats, why an entry is not stored, the limits an import runs under and
//! what it reports. docs/archives.md gives the rules these values carry.

/// An archive's container and compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// zip (stored or deflate entries).
    Zip,
    /// Uncompressed tar (ustar, GNU or PAX).
    Tar,
    /// gzip-compressed tar.
    TarGzip,
    /// zstd-compressed tar.
    TarZstd,
}

/// Why an archive entry was not stored. Each is the decision for one kind of
/// hostile or unstorable entry; the import goes on with the next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A `..` component or an absolute name ("zip slip").
    UnsafePath,
    /// A symbolic link: never created.
    Symlink,
    /// A hard link: never created.
    HardLink,
    /// A device node, FIFO or any entry that is not a file or a folder.
    SpecialFile,
    /// The name is not UTF-8.
    NameNotUtf8,
    /// The name cannot be a path of the service (NUL, backslash, control
    /// character, too long) or is reserved (`.trash`, temporary files).
    InvalidName,
    /// Nested deeper than the storage walks (`storage::MAX_DEPTH`).
    TooDeep,
    /// The name is taken and the conflict policy does not rename.
    AlreadyExists,
    /// A file is where one of its folders should be (or a folder where the
    /// file should be).
    NotAFolder,
    /// SKIP_IF_IDENTICAL: its content is already stored under its name or
    /// one of its ` (n)` variants (`storage::NewFile::identical_stored`).
    Identical,
}

/// An entry that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// The entry's name as the archive spells it (invalid UTF-8 shown as
    /// U+FFFD).
    pub name: String,
    pub reason: SkipReason,
    /// More for people: a link's target, the system's refusal, …
    pub detail: String,
}

/// The bounds an import runs under, checked while the archive streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most bytes an archive may expand to (file contents, headers and
    /// skipped entries' data alike), whatever the user's quota.
    pub max_expanded_bytes: u64,
    /// Most entries (files, folders and skipped entries) in one archive.
    pub max_entries: u64,
    /// Most bytes expanded per byte received, once more than
    /// [`ArchiveLimits::ratio_floor_bytes`] were expanded: a zip bomb.
    pub max_ratio: u64,
    /// Expansion below which the ratio is not checked (a small archive of
    /// very compressible files is no bomb).
    pub ratio_floor_bytes: u64,
}
