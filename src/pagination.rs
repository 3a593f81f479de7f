//! Opaque page tokens.
//!
//! A token is the keyset position of the last item of the previous page,
//! (timestamp in microseconds, id), as base64url. Clients must treat it as
//! opaque; a token that does not decode is INVALID_ARGUMENT on `page_token`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: i32 = 50;
/// Largest page any list RPC returns.
pub const MAX_PAGE_SIZE: i32 = 1000;

/// Validates `page_size`: negative is an error, 0 means the default, larger
/// than the maximum is clamped (AIP-158).
pub fn page_size(requested: i32, default: i32) -> AppResult<i64> {
    if requested < 0 {
        return Err(AppError::invalid("page_size", "must not be negative"));
    }
    Ok(i64::from(if requested == 0 {
        default
    } else {
        requested.min(MAX_PAGE_SIZE)
    }))
}

pub fn encode(time: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", time.timestamp_micros(), id))
}

pub fn decode(token: &str) -> AppResult<Option<(DateTime<Utc>, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let time = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some((time, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode(&encode(t, id)).unwrap(), Some((t, id)));
        assert_eq!(decode("").unwrap(), None);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for bad in ["!!", "abc", "MTIzOm5vdC1hLXV1aWQ"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(page_size(0, 50).unwrap(), 50);
        assert_eq!(page_size(5000, 50).unwrap(), 1000);
        assert!(page_size(-1, 50).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn micros() -> impl Strategy<Value = i64> {
            // Every instant chrono represents (years -262143 to 262142).
            let min = DateTime::<Utc>::MIN_UTC.timestamp_micros();
            let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
            prop_oneof![min..=max, Just(min), Just(max), Just(0)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn tokens_round_trip(micros in micros(), id in any::<u128>()) {
                let time = DateTime::from_timestamp_micros(micros).expect("in range");
                let id = Uuid::from_u128(id);
                prop_assert_eq!(decode(&encode(time, id)).unwrap(), Some((time, id)));
            }

            /// Any client-supplied token decodes or is INVALID_ARGUMENT on
            /// `page_token`, never a panic; what decodes re-encodes to the
            /// same position.
            #[test]
            fn any_token_decodes_or_is_invalid(token in prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_=+/-]{0,80}",
                any::<Vec<u8>>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
                ("-?[0-9]{1,20}", "[0-9a-fA-F-]{0,40}")
                    .prop_map(|(m, id)| URL_SAFE_NO_PAD.encode(format!("{m}:{id}"))),
            ]) {
                match decode(&token) {
                    Ok(None) => prop_assert!(token.is_empty()),
                    Ok(Some((time, id))) => {
                        prop_assert_eq!(decode(&encode(time, id)).unwrap(), Some((time, id)));
                    }
                    Err(AppError::InvalidArgument { field, .. }) => {
                        prop_assert_eq!(field, "page_token");
                    }
                    Err(other) => prop_assert!(false, "{token:?}: {other:?}"),
                }
            }

            #[test]
            fn page_sizes_are_bounded_or_invalid(requested in any::<i32>()) {
                match page_size(requested, DEFAULT_PAGE_SIZE) {
                    Ok(size) => {
                        prop_assert!(requested >= 0);
                        prop_assert!((1..=i64::from(MAX_PAGE_SIZE)).contains(&size));
                    }
                    Err(AppError::InvalidArgument { field, .. }) => {
                        prop_assert!(requested < 0);
                        prop_assert_eq!(field, "page_size");
                    }
                    Err(other) => prop_assert!(false, "{requested}: {other:?}"),
                }
            }
        }
    }
}
