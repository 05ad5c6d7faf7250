//! The encoding of everything this node persists or sends to peers: one format-version byte,
//! then MessagePack with field names. Named fields let new optional fields be added without
//! breaking old data; the version byte lets a future incompatible format be told apart.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record")]
    Empty,
    #[error("record has format version {0}, this build reads version {FORMAT_V1}")]
    UnknownVersion(u8),
    #[error("cannot decode record: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes a value. MessagePack encoding of our own types into a Vec cannot fail (no I/O,
/// no non-string map keys), so a failure is a bug, not an operating error.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V1);
    rmp_serde::encode::write_named(&mut out, value)
        .expect("MessagePack encoding into a Vec of a serialisable value cannot fail");
    out
}

/// The length [`encode`] would produce, without building the encoding (byte strings are
/// counted, not copied).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(1);
    rmp_serde::encode::write_named(&mut counter, value)
        .expect("MessagePack encoding of a serialisable value cannot fail");
    counter.0
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_V1, rest)) => Ok(rmp_serde::from_slice(rest)?),
        Some((&v, _)) => Err(CodecError::UnknownVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_versions() {
        let v = vec![1u64, 2, 3];
        let bytes = encode(&v);
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), v);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<Vec<u64>>(&future),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(decode::<Vec<u64>>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        let v = (vec![1u64, 1 << 40], "text".to_owned(), vec![7u8; 1000]);
        assert_eq!(encoded_len(&v), encode(&v).len());
    }
}
