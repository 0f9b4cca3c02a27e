//! One of each for handling untrusted input: a pure crate (no I/O) that every reader of
//! registry, layout, configuration and archive data shares, so that a check is written once and
//! cannot drift between two copies.
//!
//! - [`Digest`]: the validated `sha256:<64 lowercase hex>` content digest, safe to use as a file
//!   name, URL segment or tag once parsed.
//! - [`json`]: strict JSON reading: duplicate keys, keys that Go's case-insensitive
//!   `encoding/json` would take for another field, deep nesting and out-of-range numbers are
//!   refused.
//! - [`time`]: Unix seconds as RFC 3339 UTC, for messages and manifests, safe for hostile values.
//! - [`text`]: the sanitizer for untrusted text quoted in messages: control characters, escape
//!   sequences and bidi overrides are shown escaped, and long text is shortened.
//!
//! ```
//! use cnb_untrusted::{json, text, Digest};
//!
//! let digest: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse()?;
//! assert_eq!(digest, Digest::of(b"{}"));
//!
//! // Go would read `PayloadType` as `payloadType`: two readers, two meanings. Refused.
//! let doc = br#"{"payloadType":"a","PayloadType":"b"}"#;
//! json::check_document(doc, json::MAX_DEPTH)?;
//! let mut keys = json::Keys::new(&["payloadType"], "the envelope");
//! keys.check("payloadType")?;
//! assert!(keys.check("PayloadType").is_err());
//!
//! // A forged status line stays one visible line.
//! assert_eq!(text::sanitize("\r\x1b[2Kok", 80), "\\r\\u{1b}[2Kok");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod digest;
pub mod hollow;
pub mod json;
pub mod json_stream;
pub mod text;
pub mod time;

pub use digest::{Digest, DigestError};
