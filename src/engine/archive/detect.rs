//! Telling an archive's format from its first bytes ("magic"), without
//! buffering more than the first block.

use std::io::{self, BufReader, Chain, Cursor, Read};

use crate::domain::archive::ArchiveFormat;

/// Bytes looked at: one tar header block.
const HEAD: usize = 512;
/// Read buffer over the received archive (the decompressors and the zip
/// reader read through it).
const BUFFER: usize = 256 * 1024;

/// Why no format could be told.
pub(crate) enum Detected {
    /// Reading the first bytes failed.
    Failed(io::Error),
    /// The bytes are no known archive (message for the user).
    Unknown(String),
}

/// The archive's reader with its first bytes put back in front.
pub(crate) type Source<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// Reads the first block of `source` and tells its format (`asked`, when
/// given, is checked against the magic where there is one).
pub(crate) fn detect<R: Read>(
    mut source: R,
    asked: Option<ArchiveFormat>,
) -> Result<(ArchiveFormat, Source<R>), Detected> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut source)
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(Detected::Failed)?;
    if head.is_empty() {
        return Err(Detected::Unknown("the archive is empty".into()));
    }
    let found = sniff(&head);
    let format = match (asked, found) {
        (None, Some(found)) => found,
        (None, None) => {
            return Err(Detected::Unknown(format!(
                "not a zip, tar, tar.gz or tar.zst archive (it starts with {})",
                hex::encode(&head[..head.len().min(8)])
            )));
        }
        (Some(asked), Some(found)) if asked != found => {
            return Err(Detected::Unknown(format!(
                "the archive is {}, not {} as the request says",
                describe(found),
                describe(asked)
            )));
        }
        (Some(asked), _) => asked,
    };
    let reader = BufReader::with_capacity(BUFFER, Cursor::new(head).chain(source));
    Ok((format, reader))
}

fn describe(format: ArchiveFormat) -> &'static str {
    match format {
        ArchiveFormat::Zip => "a zip archive",
        ArchiveFormat::Tar => "a tar archive",
        ArchiveFormat::TarGzip => "gzip-compressed",
        ArchiveFormat::TarZstd => "zstd-compressed",
    }
}

/// The format the first bytes show, if any.
fn sniff(head: &[u8]) -> Option<ArchiveFormat> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(ArchiveFormat::Zip);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(ArchiveFormat::TarGzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(ArchiveFormat::TarZstd);
    }
    if is_tar_header(head) {
        return Some(ArchiveFormat::Tar);
    }
    None
}

/// Whether `head` is a tar header block: its checksum (bytes 148..156,
/// octal) is the sum of the block's bytes with the checksum field counted
/// as spaces. This also recognizes old v7 headers, which have no magic.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < HEAD {
        return false;
    }
    let field = &head[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| ('0'..='7').contains(c))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = head[..HEAD]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    // An all-zero block (an empty archive's end marker) is no header.
    sum != 8 * 32 && sum == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(name: &str) -> Vec<u8> {
        let mut builder = ::tar::Builder::new(Vec::new());
        let mut header = ::tar::Header::new_ustar();
        header.set_size(2);
        header.set_cksum();
        builder.append_data(&mut header, name, &b"hi"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn formats_are_told_by_their_magic() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(ArchiveFormat::Zip));
        assert_eq!(sniff(b"PK\x05\x06"), Some(ArchiveFormat::Zip));
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(ArchiveFormat::TarGzip));
        assert_eq!(
            sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(ArchiveFormat::TarZstd)
        );
        assert_eq!(sniff(&tar_with("a.txt")), Some(ArchiveFormat::Tar));
        assert_eq!(sniff(&[0u8; 512]), None);
        assert_eq!(sniff(b"hello world"), None);
        let mut bad = tar_with("a.txt");
        bad[0] ^= 1;
        assert_eq!(sniff(&bad), None);
    }

    #[test]
    fn the_first_bytes_are_put_back() {
        let tar = tar_with("a.txt");
        let (format, mut reader) = detect::<&[u8]>(&tar, None).ok().unwrap();
        assert_eq!(format, ArchiveFormat::Tar);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, tar);
        let Err(Detected::Unknown(message)) = detect::<&[u8]>(&tar, Some(ArchiveFormat::Zip))
        else {
            panic!("a tar is not a zip");
        };
        assert!(message.contains("tar"), "{message}");
        assert!(matches!(
            detect::<&[u8]>(b"", None),
            Err(Detected::Unknown(_))
        ));
    }
}
