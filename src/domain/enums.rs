//! The operation's vocabulary: every state, kind, phase, record status, role
//! and policy, each with its one spelling.
//!
//! Each enum is declared once below, with the word that stands for each
//! variant wherever a value is written down as text: Postgres text columns,
//! JSON (the `options` column, `phase_seconds`, the progress feed on Redis,
//! stored reports, token claims) and metric labels. `as_str` and `parse` are
//! the only mapping between variants and words; everything else (diesel's
//! `ToSql`/`FromSql` in `db::enums`, serde here, the SQL fragments of
//! `db::enums`) is built on them, and no other file of `src/` spells these
//! words (`scripts/check-domain-strings.sh` keeps it so). The protobuf
//! mapping, variant to variant, is `api::convert`'s alone.
//!
//! An unknown word is an error ([`UnknownWord`]), never a default: a row
//! written by a newer version, or damaged, fails loudly instead of being
//! silently misread (before, an unknown duplicate policy became "report only").

use std::{borrow::Cow, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A stored word that names no variant of the enum it was read for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?} (expected one of: {})", .expected.join(", "))]
pub struct UnknownWord {
    /// What was being read ("operation state", …).
    pub what: &'static str,
    pub word: String,
    pub expected: &'static [&'static str],
}

/// What every enum of this module has: its variants and their words.
pub trait Word: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// What the enum is, for messages ("operation state").
    const WHAT: &'static str;
    /// Every variant, in declaration order.
    const ALL: &'static [Self];
    /// The words, in the same order.
    const WORDS: &'static [&'static str];
    fn as_str(self) -> &'static str;
    fn parse(word: &str) -> Result<Self, UnknownWord>;
}

macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored for this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value stored as `word`; an unknown word is an error.
            pub fn parse(word: &str) -> Result<$name, UnknownWord> {
                match word {
                    $($word => Ok($name::$variant),)+
                    unknown => Err(UnknownWord {
                        what: $what,
                        word: unknown.to_string(),
                        expected: <$name as Word>::WORDS,
                    }),
                }
            }
        }

        impl Word for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = $name::ALL;
            const WORDS: &'static [&'static str] = &[$($word,)+];

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn parse(word: &str) -> Result<$name, UnknownWord> {
                $name::parse(word)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<$name, UnknownWord> {
                $name::parse(word)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let word = Cow::<'de, str>::deserialize(deserializer)?;
                $name::parse(&word).map_err(|_| {
                    de::Error::unknown_variant(&word, <$name as Word>::WORDS)
                })
            }
        }
    };
}

words! {
    /// Where an operation is in its life. queued → running → (planned |
    /// applying) → succeeded | failed | cancelled; `cancelling` while a
    /// running job winds down after a cancel.
    pub enum OperationState as "operation state" {
        Queued = "queued",
        Running = "running",
        /// A dry run's plan, waiting for ApplyOperation.
        Planned = "planned",
        Applying = "applying",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelling = "cancelling",
        Cancelled = "cancelled",
    }
}

impl OperationState {
    /// States in which a worker holds the job.
    pub const ACTIVE: &'static [OperationState] = &[
        OperationState::Running,
        OperationState::Applying,
        OperationState::Cancelling,
    ];
    /// States after which nothing more happens to the job by itself.
    pub const FINAL: &'static [OperationState] = &[
        OperationState::Succeeded,
        OperationState::Failed,
        OperationState::Cancelled,
    ];
    /// States in which nothing happens to the operation without a new
    /// request: the final ones and `planned` (a dry run waiting for
    /// ApplyOperation). Its journal does not change then (`db::memos`), its
    /// answers may be cached, and a watch stream ends there.
    pub const AT_REST: &'static [OperationState] = &[
        OperationState::Succeeded,
        OperationState::Failed,
        OperationState::Cancelled,
        OperationState::Planned,
    ];
    /// States of a job a worker may claim: queued, or held by a worker that
    /// may have died (`db::operations::claim`). In the order of the index
    /// predicates of `operations_pending_idx` and `operations_pending_user_idx`.
    pub const RUNNABLE: &'static [OperationState] = &[
        OperationState::Queued,
        OperationState::Running,
        OperationState::Applying,
        OperationState::Cancelling,
    ];

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// The one definition of "at rest" ([`Self::AT_REST`]).
    pub fn is_at_rest(self) -> bool {
        Self::AT_REST.contains(&self)
    }
}

words! {
    /// What an operation does.
    pub enum OperationKind as "operation kind" {
        /// Sort files into the layout template (duplicates by policy).
        Organize = "organize",
        /// Handle duplicates only; other files stay where they are.
        Deduplicate = "deduplicate",
        /// Move back what another operation moved.
        Undo = "undo",
    }
}

words! {
    /// A step of a running job (`operations.phase`, `phase_seconds` keys).
    pub enum Phase as "phase" {
        Scan = "scan",
        Categorize = "categorize",
        Hash = "hash",
        Plan = "plan",
        Journal = "journal",
        Apply = "apply",
        Cleanup = "cleanup",
        Report = "report",
        /// Part of the API's vocabulary; no job of this version enters it
        /// (recovery happens inside `apply` and `undo`).
        Recover = "recover",
        Undo = "undo",
    }
}

impl Phase {
    /// The phases an organize or deduplicate can go through, in pipeline order.
    pub const PIPELINE: &'static [Phase] = &[
        Phase::Scan,
        Phase::Categorize,
        Phase::Hash,
        Phase::Plan,
        Phase::Journal,
        Phase::Apply,
        Phase::Cleanup,
        Phase::Report,
    ];
}

words! {
    /// The state of one file in an operation's journal (`file_records.status`).
    pub enum RecordStatus as "record status" {
        Planned = "planned",
        /// Moved to its new path.
        Completed = "completed",
        Skipped = "skipped",
        Failed = "failed",
        /// A duplicate moved by the duplicate policy.
        Duplicate = "duplicate",
        /// Moved back by an undo.
        Undone = "undone",
    }
}

impl RecordStatus {
    /// The statuses of a file that is at its new path now.
    pub const MOVED: &'static [RecordStatus] = &[RecordStatus::Completed, RecordStatus::Duplicate];

    pub fn is_moved(self) -> bool {
        Self::MOVED.contains(&self)
    }
}

words! {
    /// A user's role (`users.role`).
    pub enum Role as "role" {
        User = "user",
        Admin = "admin",
    }
}

words! {
    /// What an operation does with the duplicates it finds. Nothing is ever
    /// deleted: trashed files can be restored.
    pub enum DuplicatePolicy as "duplicate policy" {
        /// Organized like any file, and reported.
        ReportOnly = "report_only",
        /// Moved to `_duplicates/` in the destination.
        MoveToDuplicatesFolder = "move_to_duplicates_folder",
        /// Moved to the user's trash (`.trash/<operation>/…`).
        MoveToTrash = "move_to_trash",
    }
}

/// Duplicates are only reported unless the request says otherwise (the
/// value of an unspecified policy, and of a stored operation without one).
impl Default for DuplicatePolicy {
    fn default() -> Self {
        DuplicatePolicy::ReportOnly
    }
}

words! {
    /// What happens when a file's destination name is taken.
    pub enum ConflictPolicy as "conflict policy" {
        /// Take the next free ` (n)` name.
        Rename = "rename",
        /// Leave the file where it is.
        Skip = "skip",
    }
}

/// A taken name is varied unless the request says otherwise.
impl Default for ConflictPolicy {
    fn default() -> Self {
        ConflictPolicy::Rename
    }
}

words! {
    /// What an upload (or a restore) does when its path is taken. Nothing is
    /// ever overwritten.
    pub enum FileConflictPolicy as "file conflict policy" {
        /// Refuse with ALREADY_EXISTS (the default).
        FailIfExists = "fail_if_exists",
        /// Store under the first free ` (n)` name.
        Rename = "rename",
        /// Uploads only: when the path (or one of its ` (n)` variants, up to
        /// the first free name) already holds the same content, write
        /// nothing and answer with that file; otherwise as `Rename`.
        SkipIfIdentical = "skip_if_identical",
    }
}

/// A taken path is refused unless the request says otherwise.
impl Default for FileConflictPolicy {
    fn default() -> Self {
        FileConflictPolicy::FailIfExists
    }
}

words! {
    /// What started an operation (`operations.trigger_kind`), and the kind
    /// of an automation's trigger (`automations.trigger_kind`; never
    /// `manual` there).
    pub enum TriggerKind as "trigger kind" {
        /// A request (CreateOperation, UndoOperation).
        Manual = "manual",
        /// An automation's cron schedule.
        Schedule = "schedule",
        /// Files uploaded into an automation's folder.
        Arrival = "arrival",
        /// An automation's folder changed on the server's disk.
        WatchedFolder = "watched_folder",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant survives text and JSON, every word is distinct, and an
    /// unknown word is an error naming what was read.
    fn round_trips<T: Word + Serialize + for<'de> Deserialize<'de> + FromStr>() {
        assert_eq!(T::ALL.len(), T::WORDS.len());
        let mut seen = std::collections::HashSet::new();
        for (&value, &word) in T::ALL.iter().zip(T::WORDS) {
            assert_eq!(value.as_str(), word);
            assert!(seen.insert(word), "{word} twice");
            assert_eq!(T::parse(word), Ok(value));
            let json = serde_json::to_value(value).unwrap();
            assert_eq!(json, serde_json::Value::String(word.into()));
            assert_eq!(serde_json::from_value::<T>(json).unwrap(), value);
        }
        for unknown in ["", "bogus", "PLANNED", " planned"] {
            let error = T::parse(unknown).unwrap_err();
            assert_eq!(error.what, T::WHAT);
            assert!(error.to_string().contains(T::WHAT), "{error}");
            assert!(serde_json::from_value::<T>(unknown.into()).is_err());
        }
        assert!(serde_json::from_value::<T>(serde_json::json!(1)).is_err());
    }

    #[test]
    fn every_word_round_trips_and_unknown_words_are_errors() {
        round_trips::<OperationState>();
        round_trips::<OperationKind>();
        round_trips::<Phase>();
        round_trips::<RecordStatus>();
        round_trips::<Role>();
        round_trips::<DuplicatePolicy>();
        round_trips::<ConflictPolicy>();
        round_trips::<FileConflictPolicy>();
        round_trips::<TriggerKind>();
    }

    #[test]
    fn the_stored_words_are_the_ones_rows_already_hold() {
        // Rows written before these enums existed must still load.
        let words = |all: &[&str]| all.join(" ");
        assert_eq!(
            words(OperationState::WORDS),
            "queued running planned applying succeeded failed cancelling cancelled"
        );
        assert_eq!(words(OperationKind::WORDS), "organize deduplicate undo");
        assert_eq!(
            words(Phase::WORDS),
            "scan categorize hash plan journal apply cleanup report recover undo"
        );
        assert_eq!(
            words(RecordStatus::WORDS),
            "planned completed skipped failed duplicate undone"
        );
        assert_eq!(words(Role::WORDS), "user admin");
        assert_eq!(
            words(DuplicatePolicy::WORDS),
            "report_only move_to_duplicates_folder move_to_trash"
        );
        assert_eq!(words(ConflictPolicy::WORDS), "rename skip");
        assert_eq!(
            words(FileConflictPolicy::WORDS),
            "fail_if_exists rename skip_if_identical"
        );
    }

    #[test]
    fn state_sets() {
        use OperationState as S;
        let at_rest: Vec<S> = S::ALL.iter().copied().filter(|s| s.is_at_rest()).collect();
        assert_eq!(at_rest, [S::Planned, S::Succeeded, S::Failed, S::Cancelled]);
        // Final states are at rest; an active or queued one never is.
        for s in S::ALL {
            assert!(!s.is_final() || s.is_at_rest(), "{s}");
            assert!(!(s.is_active() && s.is_at_rest()), "{s}");
            assert_eq!(S::RUNNABLE.contains(s), !s.is_at_rest(), "{s}");
        }
        assert!(!S::Queued.is_active());
        assert!(S::Planned.is_at_rest() && !S::Planned.is_final());
    }

    #[test]
    fn moved_statuses() {
        let moved: Vec<_> = RecordStatus::ALL
            .iter()
            .copied()
            .filter(|s| s.is_moved())
            .collect();
        assert_eq!(moved, [RecordStatus::Completed, RecordStatus::Duplicate]);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        assert_eq!(DuplicatePolicy::default(), DuplicatePolicy::ReportOnly);
        assert_eq!(ConflictPolicy::default(), ConflictPolicy::Rename);
    }
}
