//! Layout templates: where a file goes inside the destination (pipeline
//! step 4).
//!
//! A template such as `{category}/{year}/{month}/{name}` is parsed once per
//! operation ([`Template::parse`]) and rendered per file ([`Template::render`])
//! into a relative, `/`-separated path. Pure string work: no I/O.
//!
//! # Syntax
//!
//! Tokens: `{category}`, `{ext}` (lower-case last extension without the dot,
//! `noext` when there is none), `{year}`, `{month}`, `{day}` (of the
//! modification time in UTC; 4-digit year, zero-padded month and day),
//! `{name}` (the file name) and `{stem}` (the name without its last
//! extension, so `{stem}.{ext}` gives back `archive.tar.gz`),
//! `{taken_year}`, `{taken_month}`, `{taken_day}` and `{taken_date}`
//! (`YYYY-MM-DD`) of the capture date in the photo's or video's metadata
//! (the camera's calendar date; see [`super::taken`]), or of the
//! modification time in UTC, as `{year}` … give it, when the file has none.
//! Only a template with a `{taken_…}` token makes the organize read any
//! metadata ([`Template::uses_taken_date`]). Tokens are
//! lower-case and exact; there is no escape for literal braces (a `{` or `}`
//! outside a token is an error). Everything else is literal text, and `/`
//! separates folders. The default is [`DEFAULT_TEMPLATE`].
//!
//! Rejected at parse time (all [`TemplateError`]s have a message meant for the
//! user, reported as INVALID_ARGUMENT on `operation.layout_template`): empty,
//! longer than [`MAX_TEMPLATE_LEN`] characters, absolute (leading `/`), a
//! backslash, a control character (NUL, tab, newline, …), an empty folder
//! (`a//b`, trailing `/`), a `.` or `..` folder, an unknown token, an unclosed
//! `{` or a stray `}`, and a last part without `{name}` or `{stem}` (every
//! file would otherwise collide into one name).
//!
//! # Safety of the rendered path
//!
//! Values can never add structure: `/` and NUL in any value become `_`;
//! `{category}` and `{ext}` (which come from user data, not the file system)
//! also have backslashes and control characters replaced by `_`.
//! `{name}`/`{stem}` are otherwise kept byte for byte (a Linux file name may
//! legitimately contain a backslash or even a newline). A rendered part that
//! is empty, `.` or `..` becomes `_`. So the result is never absolute, never
//! has an empty, `.` or `..` component, and stays inside the destination.
//! Rendering fails only when a rendered part exceeds [`NAME_MAX`] bytes or
//! the whole path exceeds [`PATH_MAX`] bytes (the file system would refuse
//! it; the planner should skip that file with the error as the reason).
//!
//! A taken name is varied (` (1)`, ` (2)`, …) by the storage layer's one
//! free-name search, `crate::storage::names`.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::categorize::extension;

/// The template used when the operation does not give one.
pub const DEFAULT_TEMPLATE: &str = "{category}/{name}";
/// The longest accepted template, in characters.
pub const MAX_TEMPLATE_LEN: usize = 512;
/// The longest file or folder name Linux file systems accept, in bytes.
pub const NAME_MAX: usize = 255;
/// The longest rendered relative path accepted, in bytes.
pub const PATH_MAX: usize = 4095;

/// What the engine knows about a file when rendering its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts<'a> {
    /// The file name (last path component), with its extension.
    pub name: &'a str,
    /// The category display name.
    pub category: &'a str,
    /// The modification time.
    pub modified: DateTime<Utc>,
    /// The capture date from the file's metadata, if it has one (and it
    /// was read: only for templates that use it).
    pub taken: Option<NaiveDate>,
}

impl FileFacts<'_> {
    /// The date the `{taken_…}` tokens render: the capture date, else the
    /// modification time's UTC date.
    pub fn taken_or_modified(&self) -> NaiveDate {
        self.taken.unwrap_or_else(|| self.modified.date_naive())
    }
}

/// A template token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    Category,
    Ext,
    Year,
    Month,
    Day,
    Name,
    Stem,
    TakenYear,
    TakenMonth,
    TakenDay,
    TakenDate,
}

impl Token {
    /// Every token.
    pub const ALL: [Token; 11] = [
        Token::Category,
        Token::Ext,
        Token::Year,
        Token::Month,
        Token::Day,
        Token::Name,
        Token::Stem,
        Token::TakenYear,
        Token::TakenMonth,
        Token::TakenDay,
        Token::TakenDate,
    ];

    /// The token's name inside the braces.
    pub const fn as_str(self) -> &'static str {
        match self {
            Token::Category => "category",
            Token::Ext => "ext",
            Token::Year => "year",
            Token::Month => "month",
            Token::Day => "day",
            Token::Name => "name",
            Token::Stem => "stem",
            Token::TakenYear => "taken_year",
            Token::TakenMonth => "taken_month",
            Token::TakenDay => "taken_day",
            Token::TakenDate => "taken_date",
        }
    }

    /// Whether the token renders the capture date.
    const fn is_taken(self) -> bool {
        matches!(
            self,
            Token::TakenYear | Token::TakenMonth | Token::TakenDay | Token::TakenDate
        )
    }

    fn from_name(name: &str) -> Option<Token> {
        Token::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An invalid template, or a file whose destination cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the layout template is empty")]
    Empty,
    #[error("the layout template is {len} characters long; at most {MAX_TEMPLATE_LEN} are allowed")]
    TooLong { len: usize },
    #[error("the layout template must be a relative path (it must not start with \"/\")")]
    Absolute,
    #[error(
        "the layout template contains a backslash at character {position}; use \"/\" to separate folders"
    )]
    Backslash { position: usize },
    #[error(
        "the layout template contains a control character (such as NUL, tab or newline) at character {position}"
    )]
    ControlCharacter { position: usize },
    #[error("the layout template contains an empty folder name (a trailing or doubled \"/\")")]
    EmptySegment,
    #[error("the layout template must not contain \"{segment}\" as a folder name")]
    DotSegment { segment: String },
    #[error(
        "the layout template contains the unknown token {{{token}}}; valid tokens are {{category}}, {{ext}}, {{year}}, {{month}}, {{day}}, {{name}}, {{stem}}, {{taken_year}}, {{taken_month}}, {{taken_day}} and {{taken_date}}"
    )]
    UnknownToken { token: String },
    #[error("the \"{{\" at character {position} of the layout template is not closed by a \"}}\"")]
    UnclosedBrace { position: usize },
    #[error("the \"}}\" at character {position} of the layout template has no matching \"{{\"")]
    UnmatchedBrace { position: usize },
    #[error(
        "the last part of the layout template must contain {{name}} or {{stem}}; otherwise every file would get the same name"
    )]
    MissingName,
    #[error("the layout template renders a name longer than {NAME_MAX} bytes: \"{name}\"")]
    NameTooLong { name: String },
    #[error("the layout template renders a path longer than {PATH_MAX} bytes")]
    PathTooLong,
}

#[cfg(test)]
impl TemplateError {
    /// The request field a template error is reported on.
    const FIELD: &'static str = "operation.layout_template";

    /// Whether the error comes from rendering one file (the template itself
    /// is valid; skip that file) rather than from parsing.
    fn is_render_error(&self) -> bool {
        matches!(
            self,
            TemplateError::NameTooLong { .. } | TemplateError::PathTooLong
        )
    }
}

#[cfg(test)]
impl Template {
    fn as_str(&self) -> &str {
        &self.raw
    }

    fn uses(&self, token: Token) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|p| *p == Piece::Token(token))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Token(Token),
}

/// A parsed layout template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: String,
    /// One entry per path component; never empty.
    components: Vec<Vec<Piece>>,
}

impl Default for Template {
    fn default() -> Self {
        Template::parse(DEFAULT_TEMPLATE).expect("the default template is valid")
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Template {
    /// Parses and validates a template (see the module documentation).
    pub fn parse(raw: &str) -> Result<Template, TemplateError> {
        if raw.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let len = raw.chars().count();
        if len > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong { len });
        }
        for (i, c) in raw.chars().enumerate() {
            if c.is_control() {
                return Err(TemplateError::ControlCharacter { position: i + 1 });
            }
            if c == '\\' {
                return Err(TemplateError::Backslash { position: i + 1 });
            }
        }
        if raw.starts_with('/') {
            return Err(TemplateError::Absolute);
        }

        let mut components: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut literal = String::new();
        let mut chars = raw.chars().enumerate();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) | None => {
                                return Err(TemplateError::UnclosedBrace { position: i + 1 });
                            }
                            Some((_, c)) => name.push(c),
                        }
                    }
                    let token = Token::from_name(&name)
                        .ok_or(TemplateError::UnknownToken { token: name })?;
                    let current = components.last_mut().expect("never empty");
                    if !literal.is_empty() {
                        current.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    current.push(Piece::Token(token));
                }
                '}' => return Err(TemplateError::UnmatchedBrace { position: i + 1 }),
                '/' => {
                    let current = components.last_mut().expect("never empty");
                    if !literal.is_empty() {
                        current.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    components.push(Vec::new());
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            let current = components.last_mut().expect("never empty");
            current.push(Piece::Literal(literal));
        }

        for component in &components {
            match component.as_slice() {
                [] => return Err(TemplateError::EmptySegment),
                [Piece::Literal(text)] if text == "." || text == ".." => {
                    return Err(TemplateError::DotSegment {
                        segment: text.clone(),
                    });
                }
                _ => {}
            }
        }
        let last = components.last().expect("never empty");
        if !last
            .iter()
            .any(|p| matches!(p, Piece::Token(Token::Name | Token::Stem)))
        {
            return Err(TemplateError::MissingName);
        }
        Ok(Template {
            raw: raw.to_owned(),
            components,
        })
    }

    /// Whether rendering needs the files' capture dates (a `{taken_…}`
    /// token): only then does the organize read any metadata.
    pub fn uses_taken_date(&self) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::Token(t) if t.is_taken()))
    }

    /// The destination of a file, relative to the operation's destination
    /// folder: components joined by `/`, never absolute, never with an empty,
    /// `.` or `..` component. Fails only when a part or the whole path is too
    /// long for the file system.
    pub fn render(&self, file: &FileFacts<'_>) -> Result<String, TemplateError> {
        let ext = extension(file.name);
        let stem = match ext {
            Some(ext) => &file.name[..file.name.len() - ext.len() - 1],
            None => file.name,
        };
        let mut out = String::with_capacity(64);
        let mut part = String::with_capacity(64);
        for (i, component) in self.components.iter().enumerate() {
            part.clear();
            for piece in component {
                match piece {
                    Piece::Literal(text) => part.push_str(text),
                    Piece::Token(token) => match token {
                        Token::Category => push_strict(&mut part, file.category),
                        Token::Ext => match ext {
                            Some(ext) => push_strict(&mut part, &ext.to_lowercase()),
                            None => part.push_str("noext"),
                        },
                        Token::Year => {
                            part.push_str(&format!("{:04}", file.modified.year()));
                        }
                        Token::Month => {
                            part.push_str(&format!("{:02}", file.modified.month()));
                        }
                        Token::Day => part.push_str(&format!("{:02}", file.modified.day())),
                        Token::Name => push_name(&mut part, file.name),
                        Token::Stem => push_name(&mut part, stem),
                        Token::TakenYear => {
                            part.push_str(&format!("{:04}", file.taken_or_modified().year()));
                        }
                        Token::TakenMonth => {
                            part.push_str(&format!("{:02}", file.taken_or_modified().month()));
                        }
                        Token::TakenDay => {
                            part.push_str(&format!("{:02}", file.taken_or_modified().day()));
                        }
                        Token::TakenDate => {
                            let d = file.taken_or_modified();
                            let _ = write!(part, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
                        }
                    },
                }
            }
            if part.is_empty() || part == "." || part == ".." {
                part.clear();
                part.push('_');
            }
            if part.len() > NAME_MAX {
                return Err(TemplateError::NameTooLong { name: part.clone() });
            }
            if i > 0 {
                out.push('/');
            }
            out.push_str(&part);
        }
        if out.len() > PATH_MAX {
            return Err(TemplateError::PathTooLong);
        }
        Ok(out)
    }
}

/// Appends a value from user data: no separators, backslashes or control
/// characters.
fn push_strict(out: &mut String, value: &str) {
    out.extend(value.chars().map(|c| {
        if c == '/' || c == '\\' || c.is_control() {
            '_'
        } else {
            c
        }
    }));
}

/// Appends a file name (or stem) as it is, except a `/` or NUL (impossible in
/// a real file name) becomes `_`.
fn push_name(out: &mut String, value: &str) {
    out.extend(
        value
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn when() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 7, 23, 59, 59).unwrap()
    }

    fn facts<'a>(name: &'a str, category: &'a str) -> FileFacts<'a> {
        FileFacts {
            name,
            category,
            modified: when(),
            taken: None,
        }
    }

    fn render(template: &str, name: &str, category: &str) -> String {
        Template::parse(template)
            .unwrap()
            .render(&facts(name, category))
            .unwrap()
    }

    #[test]
    fn default_template() {
        let t = Template::default();
        assert_eq!(t.as_str(), DEFAULT_TEMPLATE);
        assert_eq!(t.to_string(), "{category}/{name}");
        assert_eq!(
            t.render(&facts("photo.JPG", "Images")).unwrap(),
            "Images/photo.JPG"
        );
        assert!(t.uses(Token::Category) && t.uses(Token::Name));
        assert!(!t.uses(Token::Year));
    }

    #[test]
    fn each_token() {
        assert_eq!(
            render("{category}/{name}", "a.txt", "Documents"),
            "Documents/a.txt"
        );
        assert_eq!(render("{ext}/{name}", "a.TXT", "D"), "txt/a.TXT");
        assert_eq!(render("{ext}/{name}", "README", "D"), "noext/README");
        assert_eq!(render("{ext}/{name}", ".bashrc", "D"), "noext/.bashrc");
        assert_eq!(render("{ext}/{name}", "x.tar.gz", "D"), "gz/x.tar.gz");
        assert_eq!(render("{year}/{name}", "a", "D"), "2024/a");
        assert_eq!(render("{month}/{name}", "a", "D"), "03/a");
        assert_eq!(render("{day}/{name}", "a", "D"), "07/a");
        assert_eq!(render("{stem}", "photo.jpg", "D"), "photo");
        assert_eq!(render("{stem}.{ext}", "x.tar.GZ", "D"), "x.tar.gz");
        assert_eq!(render("{stem}", "README", "D"), "README");
        assert_eq!(render("{stem}", ".bashrc", "D"), ".bashrc");
        assert_eq!(render("{stem}", ".config.json", "D"), ".config");
        assert_eq!(
            render("{category}/{year}/{month}/{name}", "a.png", "Images"),
            "Images/2024/03/a.png"
        );
        assert_eq!(
            render(
                "by-date/{year}-{month}-{day}/{category} files/{stem}_{year}.{ext}",
                "Scan 1.PDF",
                "Documents"
            ),
            "by-date/2024-03-07/Documents files/Scan 1_2024.pdf"
        );
        // Dates are UTC; early years are zero-padded.
        let old = FileFacts {
            name: "a",
            category: "D",
            modified: Utc.with_ymd_and_hms(987, 1, 2, 0, 0, 0).unwrap(),
            taken: None,
        };
        let t = Template::parse("{year}/{month}/{day}/{name}").unwrap();
        assert_eq!(t.render(&old).unwrap(), "0987/01/02/a");
    }

    #[test]
    fn taken_tokens_use_the_capture_date_else_the_modification_time() {
        let t =
            Template::parse("{taken_year}/{taken_month}/{taken_day} {taken_date}/{name}").unwrap();
        assert!(t.uses_taken_date());
        let with = FileFacts {
            taken: NaiveDate::from_ymd_opt(2019, 11, 5),
            ..facts("IMG_1.jpg", "Images")
        };
        assert_eq!(t.render(&with).unwrap(), "2019/11/05 2019-11-05/IMG_1.jpg");
        // No capture date: the modification time's UTC date (when() is
        // 2024-03-07 23:59:59 UTC), exactly what {year}/{month}/{day} give.
        let without = facts("notes.txt", "Documents");
        assert_eq!(
            t.render(&without).unwrap(),
            "2024/03/07 2024-03-07/notes.txt"
        );
        let plain = Template::parse("{year}/{month}/{day} {year}-{month}-{day}/{name}").unwrap();
        assert_eq!(plain.render(&without).unwrap(), t.render(&without).unwrap());
        // Early years are zero-padded too.
        let old = FileFacts {
            taken: NaiveDate::from_ymd_opt(1901, 2, 3),
            ..facts("a", "D")
        };
        assert_eq!(t.render(&old).unwrap(), "1901/02/03 1901-02-03/a");
        for raw in [
            DEFAULT_TEMPLATE,
            "{category}/{year}/{month}/{day}/{name}",
            "taken_year/{name}",
        ] {
            assert!(!Template::parse(raw).unwrap().uses_taken_date(), "{raw}");
        }
        for raw in ["{taken_date}-{name}", "{category}/{taken_day}/{stem}.{ext}"] {
            assert!(Template::parse(raw).unwrap().uses_taken_date(), "{raw}");
        }
    }

    #[test]
    fn parse_errors() {
        use TemplateError::*;
        let cases: &[(&str, TemplateError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("/{category}/{name}", Absolute),
            ("{category}\\{name}", Backslash { position: 11 }),
            ("{category}/\0{name}", ControlCharacter { position: 12 }),
            ("{category}/\n{name}", ControlCharacter { position: 12 }),
            ("a\t/{name}", ControlCharacter { position: 2 }),
            ("{category}//{name}", EmptySegment),
            ("{category}/{name}/", EmptySegment),
            (
                "../{name}",
                DotSegment {
                    segment: "..".into(),
                },
            ),
            (
                "a/../{name}",
                DotSegment {
                    segment: "..".into(),
                },
            ),
            (
                "./{name}",
                DotSegment {
                    segment: ".".into(),
                },
            ),
            (
                "{category}/.",
                DotSegment {
                    segment: ".".into(),
                },
            ),
            (
                "{cat}/{name}",
                UnknownToken {
                    token: "cat".into(),
                },
            ),
            (
                "{Name}",
                UnknownToken {
                    token: "Name".into(),
                },
            ),
            (
                "{taken}/{name}",
                UnknownToken {
                    token: "taken".into(),
                },
            ),
            (
                "{taken_week}/{name}",
                UnknownToken {
                    token: "taken_week".into(),
                },
            ),
            (
                "{Taken_Year}/{name}",
                UnknownToken {
                    token: "Taken_Year".into(),
                },
            ),
            ("{category}/{taken_date}", MissingName),
            ("{}/{name}", UnknownToken { token: "".into() }),
            (
                "{ name }",
                UnknownToken {
                    token: " name ".into(),
                },
            ),
            ("{category/{name}", UnclosedBrace { position: 1 }),
            ("{category}/{name", UnclosedBrace { position: 12 }),
            ("{category}}/{name}", UnmatchedBrace { position: 11 }),
            ("{category}", MissingName),
            ("{category}/{year}", MissingName),
            ("{name}/{category}", MissingName),
            ("{category}/photo.jpg", MissingName),
        ];
        for (raw, want) in cases {
            let got = Template::parse(raw).unwrap_err();
            assert_eq!(&got, want, "{raw:?}");
            assert!(!got.is_render_error());
            assert!(got.to_string().contains("template"), "{got}");
        }
        let long = format!("{}/{{name}}", "a".repeat(MAX_TEMPLATE_LEN));
        assert_eq!(
            Template::parse(&long).unwrap_err(),
            TemplateError::TooLong {
                len: MAX_TEMPLATE_LEN + 7
            }
        );
        let just_fits = format!("{}/{{name}}", "é".repeat(MAX_TEMPLATE_LEN - 7));
        assert!(Template::parse(&just_fits).is_ok());
        assert_eq!(TemplateError::FIELD, "operation.layout_template");
    }

    #[test]
    fn error_messages_are_readable() {
        let msg = Template::parse("{foo}/{name}").unwrap_err().to_string();
        assert_eq!(
            msg,
            "the layout template contains the unknown token {foo}; valid tokens are \
             {category}, {ext}, {year}, {month}, {day}, {name}, {stem}, {taken_year}, \
             {taken_month}, {taken_day} and {taken_date}"
        );
        let msg = Template::parse("{category}").unwrap_err().to_string();
        assert!(msg.contains("{name} or {stem}"), "{msg}");
        let msg = Template::parse("x/{name").unwrap_err().to_string();
        assert!(msg.contains("\"{\" at character 3"), "{msg}");
    }

    #[test]
    fn accepted_edge_templates() {
        for raw in [
            "{name}",
            "{stem}",
            "...{name}",
            "..{stem}",
            "a.b/{name}",
            "{name}/{name}",
            "Fotos {year}/{month}.{day} - {name}",
            "ünïcödé/{name}",
        ] {
            assert!(Template::parse(raw).is_ok(), "{raw}");
        }
        assert_eq!(
            "{category}/{name}".parse::<Template>(),
            Ok(Template::default())
        );
    }

    #[test]
    fn values_are_sanitized() {
        assert_eq!(render("{category}/{name}", "a.txt", "a/b"), "a_b/a.txt");
        assert_eq!(render("{category}/{name}", "a.txt", ".."), "_/a.txt");
        assert_eq!(render("{category}/{name}", "a.txt", "."), "_/a.txt");
        assert_eq!(render("{category}/{name}", "a.txt", ""), "_/a.txt");
        assert_eq!(
            render("{category}/{name}", "a.txt", "a\\b\nc"),
            "a_b_c/a.txt"
        );
        assert_eq!(
            render("{category}/{name}", "a.txt", "../../etc"),
            ".._.._etc/a.txt"
        );
        assert_eq!(render("{name}", "..", "D"), "_");
        assert_eq!(render("{name}", "", "D"), "_");
        assert_eq!(render("{name}", "x/../../y", "D"), "x_.._.._y");
        assert_eq!(render("{stem}", "..x", "D"), "..x");
        // {stem} of "a." has no extension to drop.
        assert_eq!(render("{stem}", "a.", "D"), "a.");
        // Real file names keep their bytes.
        assert_eq!(render("{name}", "a\\b\tc.txt", "D"), "a\\b\tc.txt");
        assert_eq!(render("{ext}/{name}", "a.T/X", "D"), "t_x/a.T_X");
    }

    /// Every combination of tricky values with a set of templates: the output
    /// never escapes the destination.
    #[test]
    fn no_rendered_path_escapes() {
        let templates = [
            "{name}",
            "{stem}",
            "{category}/{name}",
            "{category}{ext}/{stem}",
            "{ext}/{stem}{ext}",
            "{category}/{year}/{month}/{day}/{name}",
            "..{category}/{stem}",
            "{category}../{name}",
            "x{category}/{stem}.{ext}",
        ];
        let values = [
            "", ".", "..", "...", "/", "//", "a/..", "../", "/..", "./", "\0", "..\0", "a\\..",
            "\\", ".\u{0}.", "\n", "a", ".a", "a.", "..a", "a..", ".tar.gz", "a.tar.gz", "é/..",
        ];
        let mut checked = 0;
        for raw in templates {
            let t = Template::parse(raw).unwrap();
            for name in values {
                for category in values {
                    let out = t.render(&facts(name, category)).unwrap();
                    assert!(
                        !out.starts_with('/'),
                        "{raw} {name:?} {category:?} → {out:?}"
                    );
                    assert!(!out.contains('\0'), "{out:?}");
                    for part in out.split('/') {
                        assert!(
                            !part.is_empty() && part != "." && part != "..",
                            "{raw} {name:?} {category:?} → {out:?}"
                        );
                    }
                    assert_eq!(
                        out.split('/').count(),
                        raw.split('/').count(),
                        "values added folders: {raw} {name:?} {category:?} → {out:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, templates.len() * values.len() * values.len());
    }

    #[test]
    fn render_errors_for_overlong_names() {
        let long = format!("{}.txt", "n".repeat(250));
        let t = Template::parse("{category}/{name}").unwrap();
        assert!(t.render(&facts(&long, "D")).is_ok());
        let t = Template::parse("{category}/{year}-{name}").unwrap();
        let err = t.render(&facts(&long, "D")).unwrap_err();
        assert!(matches!(err, TemplateError::NameTooLong { .. }));
        assert!(err.is_render_error());
        let deep = vec!["{name}"; 60].join("/");
        let t = Template::parse(&deep).unwrap();
        assert_eq!(
            t.render(&facts(&long, "D")).unwrap_err(),
            TemplateError::PathTooLong
        );
    }

    mod properties {
        use super::*;
        use crate::testing::{fragment, hostile_path};
        use proptest::prelude::*;
        use std::path::{Component, Path};

        /// A template built from tokens and hostile literal pieces, mostly
        /// valid, so rendering gets exercised (invalid ones test the parser).
        fn template() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                4 => proptest::sample::select(
                    Token::ALL.map(|t| format!("{{{}}}", t.as_str())).to_vec()
                ),
                2 => proptest::sample::select(vec!["..", ".", "x", " ", "é", "%2e%2e", "\u{2024}\u{2024}", "\u{ff0f}", "-", "="])
                    .prop_map(str::to_owned),
                1 => fragment(),
            ];
            let component = proptest::collection::vec(piece, 1..4).prop_map(|p| p.concat());
            (proptest::collection::vec(component, 0..4), any::<bool>()).prop_map(
                |(mut parts, stem)| {
                    parts.push(if stem { "{stem}.{ext}" } else { "{name}" }.to_owned());
                    parts.join("/")
                },
            )
        }

        fn modified() -> impl Strategy<Value = DateTime<Utc>> {
            // Years 0001 to 9999: what a file system timestamp can hold.
            (-62_135_596_800i64..253_402_300_799i64)
                .prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Parsing any string never panics, and whatever parses renders
            /// hostile names and categories into a path that stays inside
            /// the destination and has exactly the template's folders.
            #[test]
            fn rendered_paths_never_escape(
                raw in prop_oneof![3 => template(), 1 => hostile_path()],
                name in hostile_path(),
                category in hostile_path(),
                modified in modified(),
                taken in proptest::option::of(modified().prop_map(|t| t.date_naive())),
            ) {
                let Ok(template) = Template::parse(&raw) else {
                    return Ok(());
                };
                let facts = FileFacts { name: &name, category: &category, modified, taken };
                let out = match template.render(&facts) {
                    Ok(out) => out,
                    Err(error) => {
                        prop_assert!(error.is_render_error(), "{raw:?}: {error:?}");
                        return Ok(());
                    }
                };
                prop_assert!(!out.starts_with('/'), "{raw:?} {name:?} {category:?} -> {out:?}");
                prop_assert!(!out.contains('\0'));
                prop_assert!(out.len() <= PATH_MAX);
                for part in out.split('/') {
                    prop_assert!(!matches!(part, "" | "." | ".."), "{raw:?} {name:?} {category:?} -> {out:?}");
                    prop_assert!(part.len() <= NAME_MAX);
                }
                prop_assert_eq!(out.split('/').count(), raw.split('/').count());
                let destination = Path::new("/srv/storage/user/sorted");
                let joined = destination.join(&out);
                prop_assert!(joined.starts_with(destination));
                prop_assert!(joined
                    .strip_prefix(destination)
                    .expect("starts with the destination")
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))));
            }
        }
    }
}
