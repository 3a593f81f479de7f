//! Users' rules for the categorizer.

/// A user's custom category (a row of the `categories` table): stored by
/// `db::categories`, checked and applied by `engine::categorize`
/// (`CustomRule::validate`, `Categorizer`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomRule {
    pub name: String,
    /// Extensions without the dot; case and a leading dot are ignored.
    pub extensions: Vec<String>,
    /// Globs, see `engine::categorize` for how they are matched.
    pub globs: Vec<String>,
    /// Higher priorities are tried first.
    pub priority: i32,
}
