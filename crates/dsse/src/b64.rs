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

/// Why a streamed base64 text was refused ([`Base64Decoder`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Error {
    /// Characters of both the standard and the URL-safe alphabet.
    #[error("mixes the standard and the URL-safe base64 alphabets")]
    MixedAlphabets,
    /// Padding before the last four characters.
    #[error("padding before the end")]
    PaddingInside,
    /// What the base64 decoder refuses (a character outside the alphabet, a bad tail).
    #[error("{0}")]
    Invalid(String),
}

/// A strict base64 decoder fed in pieces: the text [`Envelope::from_json`](crate::Envelope::from_json)
/// accepts, and nothing else (standard or URL-safe alphabet, never both; padding optional, only at
/// the end; canonical trailing bits; no whitespace). Holds at most one piece and four characters.
#[derive(Debug, Default)]
pub struct Base64Decoder {
    pending: Vec<u8>,
    url_safe: Option<bool>,
}

impl Base64Decoder {
    /// A decoder at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    fn engine(&self) -> &'static GeneralPurpose {
        if self.url_safe == Some(true) {
            &READ_URL_SAFE
        } else {
            &READ_STANDARD
        }
    }

    /// Feeds the next piece of text; the bytes decoded so far are appended to `out`.
    pub fn feed(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        for &c in text {
            let url = match c {
                b'+' | b'/' => Some(false),
                b'-' | b'_' => Some(true),
                _ => None,
            };
            if let Some(url) = url {
                if self.url_safe.is_some_and(|u| u != url) {
                    return Err(Base64Error::MixedAlphabets);
                }
                self.url_safe = Some(url);
            }
        }
        self.pending.extend_from_slice(text);
        let n = self.pending.len();
        // The last group (one to four characters) waits for the end: only it may be padded.
        let keep = match n % 4 {
            0 => 4.min(n),
            r => r,
        };
        let ready = n - keep;
        if ready > 0 {
            if self.pending[..ready].contains(&b'=') {
                return Err(Base64Error::PaddingInside);
            }
            self.engine()
                .decode_vec(&self.pending[..ready], out)
                .map_err(|e| Base64Error::Invalid(e.to_string()))?;
            self.pending.drain(..ready);
        }
        Ok(())
    }

    /// Ends the text; the last bytes are appended to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), Base64Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.engine()
            .decode_vec(&self.pending, out)
            .map_err(|e| Base64Error::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(text: &str, piece: usize) -> Result<Vec<u8>, Base64Error> {
        let mut d = Base64Decoder::new();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece.max(1)) {
            d.feed(chunk, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn streamed_decoding_agrees_with_whole_decoding() {
        let long = STANDARD.encode((0..=255u8).cycle().take(1000).collect::<Vec<u8>>());
        let url = long.replace('+', "-").replace('/', "_");
        let cases = [
            "",
            "+/+/",
            "-_-_",
            "aGk=",
            "aGk",
            "aGk=aGk=",
            "+/-_",
            "aGk=\n",
            "a Gk=",
            "not base64!",
            "aGl=",
            "a",
            "=",
            "====",
            "aGk==",
            "QUJD",
            "QUJDRA",
            "QUJDRA==",
            "QUJDRA=",
            &long,
            &url,
            &long[..long.len() - 1],
            &format!("{long}-"),
            &format!("-{long}"),
        ];
        for text in cases {
            let whole = decode(text).ok();
            for piece in [1, 2, 3, 4, 5, 7, 64, 10_000] {
                assert_eq!(
                    streamed(text, piece).ok(),
                    whole,
                    "{text:?} in pieces of {piece}"
                );
            }
        }
    }

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
