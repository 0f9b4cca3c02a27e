//! Base64 helpers: we write standard base64 with padding; we read standard or URL-safe, padded
//! or not (DSSE allows either alphabet, and Sigstore bundles are protobuf JSON, whose `bytes`
//! may be unpadded), and reject anything else (mixed alphabets, whitespace, non-canonical tail
//! bits).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

const READ_CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const READ_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, READ_CONFIG);
const READ_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, READ_CONFIG);

/// Standard base64 with padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Standard or URL-safe base64, padding optional.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    READ_STANDARD
        .decode(text)
        .or_else(|first| READ_URL_SAFE.decode(text).map_err(|_| first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_accepts_standard_url_safe_padded_and_unpadded() {
        let bytes = [0xfbu8, 0xff, 0xbf];
        assert_eq!(decode("+/+/").unwrap(), bytes);
        assert_eq!(decode("-_-_").unwrap(), bytes);
        assert_eq!(decode("aGk=").unwrap(), b"hi");
        assert_eq!(decode("aGk").unwrap(), b"hi");
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn decode_rejects_garbage_mixed_alphabets_and_whitespace() {
        assert!(decode("+/-_").is_err());
        assert!(decode("aGk=\n").is_err());
        assert!(decode("a Gk=").is_err());
        assert!(decode("not base64!").is_err());
        assert!(decode("aGl=").is_err(), "non-canonical trailing bits");
        assert!(decode("a").is_err());
    }
}
