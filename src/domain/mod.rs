//! The domain core: what an operation is, in types every layer shares.
//!
//! - [`enums`]: the vocabulary (states, kinds, phases, record statuses,
//!   roles, policies), each word spelled once, with the sets that give the
//!   states their meaning ([`OperationState::is_at_rest`], …);
//! - [`spec`]: what an operation is asked to do ([`OperationSpec`], its
//!   stored [`OperationOptions`]);
//! - [`category`]: the built-in categories and their extensions;
//! - [`archive`]: archive formats, skip reasons and import limits;
//! - [`counters`], [`snapshot`]: what a running operation counts and shows;
//! - [`journal`]: the rows the engine plans; [`report`]: an operation's
//!   report as values; [`rules`]: users' category rules; [`rule`]: users'
//!   organizing rules (conditions and an action, issue 21);
//! - [`trigger`]: what makes an automation fire (a cron schedule in a time
//!   zone, arrivals, a watched folder).
//!
//! Layers point one way, `api` → `jobs` → `engine` → `storage`, with `db`
//! beside them, and all of them use this module; it imports nothing from
//! the rest of the crate, so that it can never pull a layer's concerns
//! (protobuf, SQL, the file system) into another. The mappings to those
//! concerns live with them: protobuf in `api::convert`, Postgres in
//! `db::enums` (the enums carry diesel's `AsExpression`/`FromSqlRow` derives,
//! which only declare them text or JSON columns; serde's impls are here, as
//! JSON is how the domain's values are written down).

pub(crate) mod archive;
pub(crate) mod category;
pub(crate) mod counters;
pub(crate) mod enums;
pub(crate) mod hash_cache;
pub(crate) mod journal;
pub(crate) mod report;
pub(crate) mod rule;
pub(crate) mod rules;
pub(crate) mod snapshot;
pub(crate) mod spec;
pub(crate) mod trigger;

pub use category::BuiltIn;
pub use counters::Counters;
pub use enums::{
    ConflictPolicy, DuplicatePolicy, FileConflictPolicy, OperationKind, OperationState, Phase,
    RecordStatus, Role, TriggerKind, UnknownWord, Word,
};
pub use journal::JournalRow;
pub use report::{CategoryShare, DuplicateFile, DuplicateGroup, Record, Report, TakenDates};
pub use rule::{
    Condition, DecidedBy, Rule, RuleAction, RuleDefinition, RuleLimits, RuleMatch, RuleSet,
};
pub use rules::CustomRule;
pub use snapshot::Snapshot;
pub use spec::{OperationOptions, OperationRequest, OperationSpec};
pub use trigger::{QuietPeriod, Schedule, ScheduleError, Trigger};
