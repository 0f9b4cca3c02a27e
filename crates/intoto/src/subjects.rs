//! The subject rule for CNB attestations, written once for both sides: the signer refuses to sign
//! what the verifier would reject, with the same rule.
//!
//! Every subject is the image manifest digest or a layer of that image (a diffID from its config's
//! `rootfs.diff_ids`). What we sign always has the image among its subjects (cosign
//! `verify-attestation` requires it); what we read may name only a layer, as the RFC's layer-scoped
//! statements do ([`ImageSubject`]). Subjects are compared by their sha256 digest.
//!
//! ```
//! use cnb_intoto::subjects::{check, ImageSubject, SubjectError, SubjectRole};
//! let image = "a".repeat(64);
//! let layer = format!("sha256:{}", "b".repeat(64));
//! let diff_ids = [layer.clone()];
//! let subjects = [("app", Some(image.as_str())), ("bp:layer", Some(&layer[7..]))];
//! assert_eq!(
//!     check(subjects, &image, Some(&diff_ids), ImageSubject::Required)?,
//!     vec![SubjectRole::Image, SubjectRole::Layer]
//! );
//! let layer_only = [("layer", Some(&layer[7..]))];
//! assert!(matches!(
//!     check(layer_only, &image, Some(&diff_ids), ImageSubject::Required),
//!     Err(SubjectError::NoImage)
//! ));
//! assert_eq!(
//!     check(layer_only, &image, Some(&diff_ids), ImageSubject::Optional)?,
//!     vec![SubjectRole::Layer]
//! );
//! # Ok::<(), SubjectError>(())
//! ```

/// What a subject is, under the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRole {
    /// The image manifest.
    Image,
    /// A layer of the image (or, when the diffIDs are not known, anything that is not the image).
    Layer,
}

/// Whether the image itself must be among the subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSubject {
    /// What we sign: cosign `verify-attestation` rejects a statement without the image digest.
    Required,
    /// What we read: the RFC's layer-scoped statements name only their layer, which the image's
    /// config (fixed by its digest) contains.
    Optional,
}

/// How a list of subjects breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A subject has no sha256 digest.
    #[error("subject `{name}` has no sha256 digest")]
    NoSha256 {
        /// Its name.
        name: String,
    },
    /// A subject is neither the image nor one of its layers.
    #[error("subject `{name}` ({diff_id}) is neither the image nor one of its layers")]
    Foreign {
        /// Its name.
        name: String,
        /// Its digest, `sha256:<hex>`.
        diff_id: String,
    },
    /// No subject is the image manifest (when [`ImageSubject::Required`]), or there is no
    /// subject at all.
    #[error("no subject is the image's digest")]
    NoImage,
}

/// Checks `subjects` (name, sha256 hex) against the image manifest digest `image_hex` and, when
/// known, its `diff_ids` (`sha256:<hex>`), returning each subject's role in order.
pub fn check<'a>(
    subjects: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    image_hex: &str,
    diff_ids: Option<&[String]>,
    image: ImageSubject,
) -> Result<Vec<SubjectRole>, SubjectError> {
    let mut roles = Vec::new();
    for (name, hex) in subjects {
        let Some(hex) = hex else {
            return Err(SubjectError::NoSha256 { name: name.into() });
        };
        if hex == image_hex {
            roles.push(SubjectRole::Image);
            continue;
        }
        let diff_id = format!("sha256:{hex}");
        if diff_ids.is_some_and(|ids| !ids.contains(&diff_id)) {
            return Err(SubjectError::Foreign {
                name: name.into(),
                diff_id,
            });
        }
        roles.push(SubjectRole::Layer);
    }
    let missing = match image {
        ImageSubject::Required => !roles.contains(&SubjectRole::Image),
        ImageSubject::Optional => roles.is_empty(),
    };
    if missing {
        return Err(SubjectError::NoImage);
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_layer_is_refused_only_when_the_diff_ids_are_known() {
        let image = "a".repeat(64);
        let other = "c".repeat(64);
        let subjects = [
            ("app", Some(image.as_str())),
            ("bp:l", Some(other.as_str())),
        ];
        assert_eq!(
            check(subjects, &image, Some(&[]), ImageSubject::Required),
            Err(SubjectError::Foreign {
                name: "bp:l".into(),
                diff_id: format!("sha256:{other}")
            })
        );
        assert_eq!(
            check(subjects, &image, None, ImageSubject::Required),
            Ok(vec![SubjectRole::Image, SubjectRole::Layer])
        );
        assert_eq!(
            check([("app", None)], &image, None, ImageSubject::Optional),
            Err(SubjectError::NoSha256 { name: "app".into() })
        );
    }
}
