//! `reference`: the hand-written image reference parser against oci-spec's
//! `distribution::Reference` (the one oci-client uses): the same host (as resolved), repository,
//! tag and digest, or both refusing with the same message. The one difference on purpose: a tag
//! is ASCII here, where oci-spec's `\w` takes Unicode letters. A reference parsed and written
//! (`Display`) parses again to the same reference (but see the one known exception below).

use cnb_referrers::ImageRef;

/// The target.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = ImageRef::parse(text);
    let theirs: Result<oci_spec::distribution::Reference, _> = text.parse();
    match (&ours, &theirs) {
        (Ok(o), Ok(t)) => {
            assert_eq!(o.repository.host, t.resolve_registry(), "{text:?}: host");
            assert_eq!(o.repository.name, t.repository(), "{text:?}: repository");
            assert_eq!(o.tag.as_deref(), t.tag(), "{text:?}: tag");
            assert_eq!(o.digest.as_deref(), t.digest(), "{text:?}: digest");
        }
        (Err(o), Err(t)) => {
            // The same message, where the two check the same rules: a reference of more than 255
            // characters may break the length rule and another, and a non-ASCII tag the tag rule
            // (on purpose, see above) and another, which the two check in different orders.
            assert!(
                text.len() > 255 || !text.is_ascii() || o.0.ends_with(&t.to_string()),
                "{text:?}: ours `{o}`, oci-spec `{t}`"
            );
        }
        (Err(o), Ok(_)) if !text.is_ascii() => {
            // oci-spec's `\w` takes Unicode letters in a tag; no registry does.
            let _ = o;
        }
        _ => panic!("{text:?}: ours {ours:?}, oci-spec {theirs:?}"),
    }
    // Known, shared with oci-spec (so not checked): a first component with upper case and no `.`
    // or `:` (`A9/0`) is taken as a Docker Hub path, giving the repository `A9/0`, which is not a
    // valid repository name, so the reference written back does not parse. Go's distribution
    // takes `A9` as a registry host instead. See docs/fuzzing.md.
    if let Some(o) = ours
        .as_ref()
        .ok()
        .filter(|o| !o.repository.name.bytes().any(|b| b.is_ascii_uppercase()))
    {
        let written = o.to_string();
        let again = ImageRef::parse(&written)
            .unwrap_or_else(|e| panic!("{text:?} written as {written:?} does not parse: {e}"));
        assert_eq!(&again, o, "{text:?} written as {written:?}");
        assert!(!o.reference().is_empty());
    }
}
