//! What a registry supports, found out by trying it: `cnb-attest doctor`.
//!
//! Every check writes to a scratch repository (by default `cnb-attest/doctor`) and cleans up where
//! the registry allows deletion. The answers come from behaviour, not from what the registry claims:
//! a registry may send `OCI-Subject` without serving the Referrers API, serve the API without
//! listing what it was given, or accept `If-Match` without honouring it.

use bytes::Bytes;
use cnb_referrers::manifest::{Descriptor, ImageManifest, OCI_EMPTY, OCI_MANIFEST};
use cnb_referrers::Digest;
use serde::Serialize;

use crate::api::Deletion;
use crate::client::Client;
use crate::Error;
use crate::Repository;

/// One finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// `Some(true)` supported, `Some(false)` not, `None` could not tell.
    pub supported: Option<bool>,
    /// What was observed.
    pub evidence: String,
}

/// Everything `doctor` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Diagnosis {
    /// The scratch repository used.
    pub repository: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// What the signer will do on this registry.
    pub signer_path: String,
}

fn manifest_bytes(
    subject: Option<&Descriptor>,
    artifact_type: Option<&str>,
    filler: usize,
) -> Vec<u8> {
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("dev.cnb-attest.doctor".to_string(), "x".repeat(filler));
    ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: artifact_type.map(str::to_string),
        config: Descriptor::empty(),
        layers: vec![Descriptor::empty()],
        subject: subject.map(Descriptor::bare),
        annotations: Some(annotations),
    }
    .to_json()
}

/// Probes `repo` and reports what it supports.
pub async fn diagnose(client: &Client, repo: &Repository) -> Result<Diagnosis, Error> {
    let mut checks = Vec::new();
    // A blob every test manifest needs.
    let empty = Digest::of(b"{}");
    if client.blob_exists(repo, &empty).await? {
        client
            .probe_single_post(repo, &empty, Bytes::from_static(b"{}"))
            .await?;
    } else {
        client
            .upload_blob(repo, &empty, Bytes::from_static(b"{}"))
            .await?;
    }
    let single = client.single_post(&repo.host);
    checks.push(Check {
        name: "single-POST blob upload",
        supported: single,
        evidence: match single {
            Some(true) => "POST ?digest= with the body answered 201".into(),
            Some(false) => {
                "POST ?digest= with the body answered 202 (body ignored; POST + PUT needed)".into()
            }
            None => "the empty blob already existed; not probed".into(),
        },
    });

    // A subject image and a referrer to it.
    let subject_bytes = manifest_bytes(None, None, 16);
    let subject = Descriptor::for_bytes(OCI_MANIFEST, &subject_bytes);
    client
        .put_manifest(
            repo,
            subject.digest.as_str(),
            &subject_bytes,
            OCI_MANIFEST,
            None,
        )
        .await?;
    let referrer_bytes = manifest_bytes(Some(&subject), Some(OCI_EMPTY), 16);
    let referrer = Descriptor::for_bytes(OCI_MANIFEST, &referrer_bytes);
    let put = client
        .put_manifest(
            repo,
            referrer.digest.as_str(),
            &referrer_bytes,
            OCI_MANIFEST,
            None,
        )
        .await?;
    let header_ok = put.oci_subject.as_deref() == Some(subject.digest.as_str());
    checks.push(Check {
        name: "OCI-Subject header on push",
        supported: Some(header_ok),
        evidence: match &put.oci_subject {
            Some(v) if header_ok => format!("OCI-Subject: {v}"),
            Some(v) => format!("OCI-Subject: {v} (not the subject pushed)"),
            None => "no OCI-Subject header".into(),
        },
    });
    let listing = client.referrers(repo, &subject.digest).await?;
    let listed = listing
        .as_ref()
        .map(|l| l.iter().any(|d| d.digest == referrer.digest));
    checks.push(Check {
        name: "Referrers API",
        supported: Some(listed == Some(true)),
        evidence: match &listing {
            None => "GET /referrers/<digest> answered 404".into(),
            Some(l) if listed == Some(true) => {
                format!("listed the referrer just pushed ({} entries)", l.len())
            }
            Some(l) => format!(
                "answered an index of {} entries without the referrer just pushed",
                l.len()
            ),
        },
    });
    let tag_resolves_to_subject = client
        .get_manifest(repo, &subject.digest.fallback_tag())
        .await?
        .map(|m| m.digest == subject.digest)
        .unwrap_or(false);
    checks.push(Check {
        name: "sha256-<hex> tag free for the tag schema",
        supported: Some(!tag_resolves_to_subject),
        evidence: if tag_resolves_to_subject {
            "the tag resolves to the subject itself: the tag-schema fallback cannot be used".into()
        } else {
            "the tag does not alias the digest".into()
        },
    });

    // ETag and If-Match, on a scratch tag.
    let tag = "cnb-attest-doctor";
    client
        .put_manifest(repo, tag, &subject_bytes, OCI_MANIFEST, None)
        .await?;
    let fetched = client.get_manifest(repo, tag).await?;
    let etag = fetched.as_ref().and_then(|f| f.etag.clone());
    let conditional = match &etag {
        None => Check {
            name: "ETag / If-Match",
            supported: Some(false),
            evidence: "no ETag on manifest GET".into(),
        },
        Some(etag) => {
            let stale =
                "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"";
            let result = client
                .put_manifest(repo, tag, &referrer_bytes, OCI_MANIFEST, Some(stale))
                .await;
            match result {
                Err(Error::PreconditionFailed(_)) => Check {
                    name: "ETag / If-Match",
                    supported: Some(true),
                    evidence: format!("ETag {etag}; a stale If-Match was refused with 412"),
                },
                Ok(_) => Check {
                    name: "ETag / If-Match",
                    supported: Some(false),
                    evidence: format!(
                        "ETag {etag} offered, but a stale If-Match was accepted (not honoured)"
                    ),
                },
                Err(e) => Check {
                    name: "ETag / If-Match",
                    supported: None,
                    evidence: format!("a stale If-Match gave: {e}"),
                },
            }
        }
    };
    checks.push(conditional);

    // Manifest size limit: the largest of a few sizes accepted.
    let mut largest = None;
    let mut refused = None;
    for size in [1usize << 20, 4 << 20, 8 << 20] {
        let bytes = manifest_bytes(None, None, size);
        let digest = Digest::of(&bytes);
        match client
            .put_manifest(repo, digest.as_str(), &bytes, OCI_MANIFEST, None)
            .await
        {
            Ok(_) => {
                largest = Some(bytes.len());
                delete(client, repo, &digest).await;
            }
            Err(e) => {
                refused = Some((bytes.len(), e.to_string()));
                break;
            }
        }
    }
    checks.push(Check {
        name: "manifests of 4 MiB and more",
        supported: Some(largest.is_some_and(|n| n >= 4 << 20)),
        evidence: match (&largest, &refused) {
            (Some(ok), Some((no, why))) => {
                format!("accepted {ok} bytes, refused {no} bytes ({why})")
            }
            (None, Some((no, why))) => format!("refused {no} bytes ({why})"),
            (Some(ok), None) => format!("accepted up to {ok} bytes (largest tried)"),
            (None, None) => "not probed".into(),
        },
    });

    let deleted = delete(client, repo, &referrer.digest).await;
    checks.push(Check {
        name: "manifest DELETE",
        supported: Some(deleted),
        evidence: if deleted {
            "deleting the test referrer by digest answered 202".into()
        } else {
            "DELETE by digest was refused (test manifests stay in the scratch repository)".into()
        },
    });
    if deleted {
        delete(client, repo, &subject.digest).await;
    }
    let api = checks
        .iter()
        .any(|c| c.name == "Referrers API" && c.supported == Some(true))
        && header_ok;
    Ok(Diagnosis {
        repository: repo.to_string(),
        signer_path: if api {
            "Referrers API: referrers are pushed by digest, no index is written".into()
        } else if tag_resolves_to_subject {
            "none: no Referrers API and the tag schema is unusable; use --format cosign-legacy tags"
                .into()
        } else {
            "Referrers Tag Schema: one sha256-<hex> index update per run, read back and repaired"
                .into()
        },
        checks,
    })
}

/// Whether the registry deleted `digest` (a 404 or a refusal is not a working delete).
async fn delete(client: &Client, repo: &Repository, digest: &Digest) -> bool {
    matches!(
        client.delete_manifest(repo, digest).await,
        Ok(Deletion::Deleted)
    )
}
