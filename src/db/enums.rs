//! How domain values are stored: the one mapping between the domain's
//! enums and Postgres.
//!
//! States, kinds, phases, record statuses and roles are `text` columns
//! holding the domain's word for each value (`domain::enums`, `as_str` and
//! `parse`); the operation's settings are a `jsonb` column holding
//! `OperationOptions` as serde writes it (the same words). Reading a word or
//! a document that names no value is a deserialization error, so the query
//! fails instead of returning a guess.
//!
//! Queries bind these values like any other. The few statements written as
//! SQL text that need a value inside the text itself (the job queue's state
//! list must match a partial index predicate for the planner to use it; the
//! report aggregates filter by status in many places) render it with
//! [`lit`] and [`list`] from the same words, so they read exactly as if the
//! words were typed there.

use std::io::Write;

use diesel::{
    deserialize::{self, FromSql},
    pg::{Pg, PgValue},
    serialize::{self, IsNull, Output, ToSql},
    sql_types::{Jsonb, Text},
};

use crate::domain::{
    ConflictPolicy, DuplicatePolicy, FileConflictPolicy, OperationKind, OperationOptions,
    OperationState, Phase, RecordStatus, Role, Word,
};

macro_rules! text_column {
    ($($name:ty),+ $(,)?) => {$(
        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let word = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(<$name>::parse(&word)?)
            }
        }
    )+};
}

text_column!(
    OperationState,
    OperationKind,
    Phase,
    RecordStatus,
    Role,
    DuplicatePolicy,
    ConflictPolicy,
    FileConflictPolicy,
);

impl ToSql<Jsonb, Pg> for OperationOptions {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary format: a version byte, then the JSON text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, self)?;
        Ok(IsNull::No)
    }
}

impl FromSql<Jsonb, Pg> for OperationOptions {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let value = <serde_json::Value as FromSql<Jsonb, Pg>>::from_sql(bytes)?;
        Ok(serde_json::from_value(value)?)
    }
}

/// `value` as an SQL string literal: `'planned'`. Words are lower-case
/// letters and underscores (a unit test checks every one), so no quoting
/// is needed inside.
pub fn lit<T: Word>(value: T) -> String {
    format!("'{}'", value.as_str())
}

/// `values` as a parenthesized SQL list of literals: `('completed', 'duplicate')`.
pub fn list<T: Word>(values: &[T]) -> String {
    let words: Vec<String> = values.iter().map(|v| lit(*v)).collect();
    format!("({})", words.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain<T: Word>() {
        for word in T::WORDS {
            assert!(
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{word:?} would need quoting in SQL"
            );
        }
    }

    #[test]
    fn rendered_sql_reads_like_typed_sql() {
        plain::<OperationState>();
        plain::<OperationKind>();
        plain::<Phase>();
        plain::<RecordStatus>();
        plain::<Role>();
        plain::<DuplicatePolicy>();
        plain::<ConflictPolicy>();
        assert_eq!(lit(OperationKind::Undo), "'undo'");
        assert_eq!(list(RecordStatus::MOVED), "('completed', 'duplicate')");
        assert_eq!(
            list(OperationState::RUNNABLE),
            "('queued', 'running', 'applying', 'cancelling')"
        );
    }
}
