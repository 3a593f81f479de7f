//! API key format: `fo_<prefix>_<secret>`.
//!
//! The 10-character prefix (lower-case letters and digits) is stored in the
//! clear and is the lookup key; the whole key is stored only as a blake3 hash
//! and compared in constant time.

use rand::Rng;

pub const PREFIX_LEN: usize = 10;

/// A freshly generated key: the full secret (shown once), its prefix and hash.
pub struct GeneratedKey {
    pub secret: String,
    pub prefix: String,
    pub hash: [u8; 32],
}

pub fn generate() -> GeneratedKey {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let prefix: String = (0..PREFIX_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let secret = format!("fo_{prefix}_{}", super::random_token(32));
    let hash = super::secret_hash(&secret);
    GeneratedKey {
        secret,
        prefix,
        hash,
    }
}

/// The prefix of a well-formed key, or None.
pub fn parse_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("fo_")?;
    let prefix = rest.get(..PREFIX_LEN)?;
    let secret = rest.get(PREFIX_LEN..)?.strip_prefix('_')?;
    let ok = prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() >= 20
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(prefix)
}

/// Constant-time check of a presented key against the stored hash.
pub fn matches(key: &str, stored_hash: &[u8]) -> bool {
    let Ok(stored): Result<[u8; 32], _> = stored_hash.try_into() else {
        return false;
    };
    blake3::hash(key.as_bytes()) == blake3::Hash::from_bytes(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match() {
        let key = generate();
        assert_eq!(parse_prefix(&key.secret), Some(key.prefix.as_str()));
        assert!(matches(&key.secret, &key.hash));
        assert!(!matches(&format!("{}x", key.secret), &key.hash));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in [
            "",
            "fo_",
            "fo_short_x",
            "xx_abcdefghij_aaaaaaaaaaaaaaaaaaaaaaa",
            "fo_ABCDEFGHIJ_aaaaaaaaaaaaaaaaaaaaaaa",
            "fo_abcdefghij-aaaaaaaaaaaaaaaaaaaaaaa",
            "fo_abcdefghij_short",
            "fo_abcdefghij_aaaaaaaaaaaaaaaaaaaaa aa",
        ] {
            assert_eq!(parse_prefix(bad), None, "{bad:?}");
        }
    }
}
