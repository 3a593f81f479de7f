//! The Content-Type of a download: from the file name's extension, else from
//! the first bytes (`infer`), else text or binary.
//!
//! A short table of common types rather than a MIME database: browsers only
//! act differently on a handful of them, and anything unknown is
//! `application/octet-stream`, which always downloads safely.

use crate::engine::categorize::extension;

/// Extension (lower-case) → media type.
const BY_EXTENSION: &[(&str, &str)] = &[
    ("txt", "text/plain; charset=utf-8"),
    ("text", "text/plain; charset=utf-8"),
    ("log", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("tsv", "text/tab-separated-values; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("toml", "application/toml"),
    ("pdf", "application/pdf"),
    ("rtf", "application/rtf"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("bmp", "image/bmp"),
    ("ico", "image/vnd.microsoft.icon"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("heic", "image/heic"),
    ("avif", "image/avif"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("avi", "video/x-msvideo"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tgz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("bz2", "application/x-bzip2"),
    ("xz", "application/x-xz"),
    ("zst", "application/zstd"),
    ("7z", "application/x-7z-compressed"),
    ("rar", "application/vnd.rar"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("epub", "application/epub+zip"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("wasm", "application/wasm"),
];

pub const OCTET_STREAM: &str = "application/octet-stream";

/// The media type for a file called `name` whose content starts with `head`.
pub fn guess(name: &str, head: &[u8]) -> String {
    if let Some(ext) = extension(name) {
        let ext = ext.to_ascii_lowercase();
        if let Some((_, media)) = BY_EXTENSION.iter().find(|(e, _)| *e == ext) {
            return (*media).to_string();
        }
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_string();
    }
    if !head.is_empty() && !head.contains(&0) && utf8_prefix(head) {
        return "text/plain; charset=utf-8".into();
    }
    OCTET_STREAM.into()
}

/// Whether `head` is UTF-8, allowing a character cut off at the end.
fn utf8_prefix(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// A `content-disposition` value offering `name` as the download's file
/// name: an ASCII fallback plus the exact UTF-8 name (RFC 6266 / 5987).
pub fn disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_then_content() {
        assert_eq!(guess("a.PNG", b""), "image/png");
        assert_eq!(guess("notes.txt", b"\0\0"), "text/plain; charset=utf-8");
        assert_eq!(
            guess("noext", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            "image/png"
        );
        assert_eq!(guess("README", b"hello\n"), "text/plain; charset=utf-8");
        assert_eq!(guess("blob", b"\0\x01\x02"), OCTET_STREAM);
        assert_eq!(guess("empty", b""), OCTET_STREAM);
        // A multi-byte character cut by the head's end is still text.
        let cut = &"caf\u{e9}".as_bytes()[..4];
        assert_eq!(guess("x", cut), "text/plain; charset=utf-8");
    }

    #[test]
    fn dispositions_are_ascii() {
        assert_eq!(
            disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let odd = disposition("caf\u{e9} \"x\".txt");
        assert!(odd.is_ascii(), "{odd}");
        assert!(odd.contains("filename=\"caf_ _x_.txt\""), "{odd}");
        assert!(odd.contains("caf%C3%A9%20%22x%22.txt"), "{odd}");
    }
}
