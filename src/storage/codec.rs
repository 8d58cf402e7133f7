//! Versioned record codec: one format-version byte, then the record in bincode 2 (standard
//! configuration: little-endian, variable-length integers).
//!
//! Decoding never panics: a short, unknown-version or malformed record becomes
//! [`Error::UnsupportedVersion`] or [`Error::Corruption`] naming the record, and the decoder
//! refuses to allocate more than [`MAX_RECORD_BYTES`] for any record.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format version written by this build.
pub const FORMAT_VERSION: u8 = 1;
/// Largest record the decoder accepts (a bound on allocations from untrusted lengths).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes `value` behind the format-version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_as(FORMAT_VERSION, value)
}

/// Encodes `value` behind the given format-version byte (for a record type whose layout has its
/// own version, as profile records do: see [`crate::storage::record::PROFILE_FORMAT_VERSION`]).
pub fn encode_as<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    // Most records are around a kilobyte: start there rather than growing from one byte.
    let mut out = Vec::with_capacity(1024);
    out.push(version);
    // Encoding into a Vec cannot fail for our plain data types (no maps with non-string keys,
    // no sequences of unknown length); fall back to an empty body rather than panic.
    match bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()) {
        Ok(_) => out,
        Err(_) => {
            debug_assert!(false, "bincode encoding of a record failed");
            out
        }
    }
}

/// Decodes a record written by [`encode`]. `key` names the record in errors.
///
/// # Errors
/// [`Error::UnsupportedVersion`] for an unknown version byte, [`Error::Corruption`] for anything
/// else that does not decode (including trailing garbage).
pub fn decode<T: DeserializeOwned>(key: &dyn Fn() -> String, bytes: &[u8]) -> Result<T> {
    let (value, used) = decode_prefix(key, bytes)?;
    if used + 1 != bytes.len() {
        return Err(Error::Corruption {
            key: key(),
            detail: format!("{} trailing bytes after the record", bytes.len() - used - 1),
        });
    }
    Ok(value)
}

/// Decodes the leading fields of a record: `T` may be a struct holding only the first fields
/// of the stored type (bincode is positional). Returns the value and the body bytes consumed.
///
/// # Errors
/// As [`decode`], except that trailing bytes are allowed.
pub fn decode_prefix<T: DeserializeOwned>(
    key: &dyn Fn() -> String,
    bytes: &[u8],
) -> Result<(T, usize)> {
    let (_, body) = split_version(key, bytes, FORMAT_VERSION)?;
    decode_body(key, body)
}

/// Splits a record into its format-version byte, which must be in `1..=newest`, and its body.
///
/// # Errors
/// [`Error::Corruption`] for an empty record, [`Error::UnsupportedVersion`] for another version.
pub fn split_version<'a>(
    key: &dyn Fn() -> String,
    bytes: &'a [u8],
    newest: u8,
) -> Result<(u8, &'a [u8])> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(Error::Corruption {
            key: key(),
            detail: "record is empty".into(),
        });
    };
    if version == 0 || version > newest {
        return Err(Error::UnsupportedVersion {
            key: key(),
            found: version,
            supported: newest,
        });
    }
    Ok((version, body))
}

/// Decodes the leading fields of a record body (after its version byte). Returns the value and
/// the bytes consumed.
///
/// # Errors
/// [`Error::Corruption`] if it does not decode.
pub fn decode_body<T: DeserializeOwned>(
    key: &dyn Fn() -> String,
    body: &[u8],
) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice(body, config()).map_err(|e| Error::Corruption {
        key: key(),
        detail: format!("cannot decode: {e}"),
    })
}

/// Decodes a whole record body: like [`decode_body`], and trailing bytes are corruption.
///
/// # Errors
/// [`Error::Corruption`] if it does not decode or does not use every byte.
pub fn decode_whole_body<T: DeserializeOwned>(key: &dyn Fn() -> String, body: &[u8]) -> Result<T> {
    let (value, used) = decode_body(key, body)?;
    if used != body.len() {
        return Err(Error::Corruption {
            key: key(),
            detail: format!("{} trailing bytes after the record", body.len() - used),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        a: u64,
        b: String,
        c: Vec<f64>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Head {
        a: u64,
    }

    fn key() -> String {
        "test".into()
    }

    #[test]
    fn round_trip_and_prefix() -> Result<()> {
        let r = Rec {
            a: 7,
            b: "x".into(),
            c: vec![1.5, -2.0],
        };
        let bytes = encode(&r);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Rec>(&key, &bytes)?, r);
        let (head, _) = decode_prefix::<Head>(&key, &bytes)?;
        assert_eq!(head, Head { a: 7 });
        Ok(())
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let good = encode(&Rec {
            a: 1,
            b: "abc".into(),
            c: vec![1.0; 4],
        });
        assert!(matches!(
            decode::<Rec>(&key, &[]),
            Err(Error::Corruption { .. })
        ));
        let mut future = good.clone();
        future[0] = 9;
        let e = decode::<Rec>(&key, &future).unwrap_err();
        assert_eq!(
            e.to_string(),
            "record test has format version 9; this build reads up to 1"
        );
        for cut in 1..good.len() {
            assert!(decode::<Rec>(&key, &good[..cut]).is_err());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode::<Rec>(&key, &trailing)
            .unwrap_err()
            .to_string()
            .contains("1 trailing bytes"));
        // A huge declared length must not allocate.
        let mut huge = vec![FORMAT_VERSION, 1];
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<Rec>(&key, &huge).is_err());
    }
}
