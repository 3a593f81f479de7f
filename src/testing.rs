//! Shared proptest strategies for the unit tests: strings an attacker would
//! send (traversal variants, look-alike dots and slashes, separators of other
//! systems, control characters, overlong names) mixed with arbitrary Unicode,
//! so the property tests of the path parser and the template renderer search
//! the interesting corners instead of only random text.

use proptest::prelude::*;

/// Fragments that have broken path handling somewhere: `..` spelled every
/// way, encoded, doubled or with look-alike Unicode dots (U+2024 ONE DOT
/// LEADER, U+FF0E FULLWIDTH FULL STOP) and slashes (U+2215 DIVISION SLASH,
/// U+FF0F FULLWIDTH SOLIDUS), Windows separators and drive letters, absolute
/// prefixes, NUL and other control characters, and names past NAME_MAX.
pub const HOSTILE_FRAGMENTS: &[&str] = &[
    "..",
    ".",
    "",
    "/",
    "../",
    "..\\",
    "....//",
    "%2e%2e/",
    "%2e%2e%2f",
    "..%2f",
    "%252e%252e",
    "\u{2024}\u{2024}",
    "\u{ff0e}\u{ff0e}",
    "\u{2215}",
    "\u{ff0f}",
    "\u{2024}\u{2024}\u{2215}",
    "C:",
    "C:\\Windows",
    "\\\\server\\share",
    "/etc/passwd",
    "\0",
    "a\0b",
    "\n",
    "\r",
    "\t",
    "\u{7f}",
    "\u{85}",
    "\u{202e}",
    "~",
    "$HOME",
    "{name}",
    "a",
    "b.txt",
    "=cmd|' /C calc'!A0",
    "@SUM(1)",
];

/// One hostile fragment or a short arbitrary string.
pub fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(HOSTILE_FRAGMENTS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => any::<String>(),
        // Past NAME_MAX (255 bytes) in one component.
        1 => (250usize..300).prop_map(|n| "x".repeat(n)),
    ]
}

/// A path-like string: hostile fragments joined by `/` (or glued together).
pub fn hostile_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(fragment(), 0..8).prop_map(|parts| parts.join("/")),
        1 => proptest::collection::vec(fragment(), 0..8).prop_map(|parts| parts.concat()),
        1 => any::<String>(),
    ]
}
