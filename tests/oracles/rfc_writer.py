"""An independent writer of attestations shaped exactly as the CNB RFC draft (rfcs#298) shows them.

Written with Python's standard library and `cryptography` only (none of cnb-attest's code), so the
flow tests can check that cnb-attest reads what a lifecycle implementing the RFC as written would
produce.

usage:
  rfc_writer.py gen-key DIR
      writes DIR/key.pem (P-256, unencrypted PKCS#8) and DIR/key.pub (SubjectPublicKeyInfo PEM)
  rfc_writer.py write IMAGE [--layers DIR] --key PEM [options]
      IMAGE: an OCI layout directory, or `host:port/repo@sha256:<hex>` (plain HTTP)
      --creds USER:PASS      basic auth for the registry (also RFC_WRITER_CREDS)
      --name NAME            the image subject's name (default: host:port/repo, or for a layout the
                             directory's base name)
      --only-image-subject   every SBOM image-scoped: the image as only subject, the buildpack only
                             in the layer descriptor's annotation
      --layers DIR           the build's layers directory (without it, no buildpack SBOMs)
      --platform-sbom FILE   one more CycloneDX attestation, image subject only, no buildpack
                             annotation (as a platform injecting a run-image SBOM)
      --mislabel             the node-engine `node` layer SBOMs get the subject
                             `paketo-buildpacks/node-engine:node` with ca-certificates' diffID
      --envelopes-dir DIR    also write each DSSE envelope to DIR/<n>.json (for an oracle)

Per SBOM file `<layers>/sbom/launch/<escaped-bp>/[<layer>/]sbom.<ext>` it writes:
  * an in-toto Statement v0.1 whose predicateType follows the extension and whose predicate is the
    SBOM JSON; image-scoped: the image as only subject; layer-scoped: the bare layer name with the
    layer's diffID (from the image config, found through the lifecycle label) as only subject;
  * a DSSE envelope (application/vnd.in-toto+json, PAE, ECDSA P-256 SHA-256 DER, keyid "");
  * a referrer manifest: OCI image manifest, config application/vnd.oci.image.config.v1+json (the
    `{}` blob), no artifactType, subject = the image, one application/vnd.dsse.envelope.v1+json
    layer annotated with predicateType, dev.cosignproject.cosign/signature "" and
    io.buildpacks.buildpack.id.
Stored into the layout (blobs + an index.json entry) or pushed (blob upload, manifest PUT by
digest; with no OCI-Subject header in the response, the sha256-<hex> Referrers Tag Schema index is
updated too). Prints a JSON list describing what was written.
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD = "application/vnd.in-toto+json"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
PREDICATE_TYPES = {
    "cdx.json": "https://cyclonedx.org/bom",
    "spdx.json": "https://spdx.dev/Document",
    "syft.json": "https://syft.dev/bom",
}
LABEL = "io.buildpacks.lifecycle.metadata"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


# ---------------------------------------------------------------------------------------------
# Stores: an OCI layout directory, or a registry over plain HTTP.


class Layout:
    def __init__(self, path):
        self.path = path
        self.index_path = os.path.join(path, "index.json")
        index = json.load(open(self.index_path))
        manifests = [m for m in index["manifests"] if m["mediaType"] in (OCI_MANIFEST, DOCKER_MANIFEST)]
        tagged = [m for m in manifests if "org.opencontainers.image.ref.name" in m.get("annotations", {})]
        entry = (tagged or manifests)[0]
        self.image = {"mediaType": entry["mediaType"], "digest": entry["digest"], "size": entry["size"]}
        self.manifest_bytes = self.blob(entry["digest"])
        self.default_name = os.path.basename(os.path.abspath(path))

    def blob(self, digest):
        algorithm, hex_ = digest.split(":", 1)
        return open(os.path.join(self.path, "blobs", algorithm, hex_), "rb").read()

    def put_blob(self, data):
        digest = sha256(data)
        target = os.path.join(self.path, "blobs", "sha256", digest[7:])
        if not os.path.exists(target):
            with open(target, "wb") as f:
                f.write(data)
        return digest

    def put_manifest(self, data, media_type):
        digest = self.put_blob(data)
        index = json.load(open(self.index_path))
        if not any(m["digest"] == digest for m in index["manifests"]):
            index["manifests"].append({"mediaType": media_type, "digest": digest, "size": len(data)})
            tmp = self.index_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(index, f)
            os.replace(tmp, self.index_path)
        return digest


class Registry:
    def __init__(self, reference, creds):
        host, rest = reference.split("/", 1)
        repo, digest = rest.split("@", 1)
        self.base = f"http://{host}/v2/{repo}"
        self.auth = None
        if creds:
            self.auth = "Basic " + base64.b64encode(creds.encode()).decode()
        self.default_name = f"{host}/{repo}"
        status, headers, body = self.request(
            "GET", f"/manifests/{digest}", accept=f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"
        )
        if status != 200:
            sys.exit(f"GET manifest {digest}: HTTP {status}")
        if sha256(body) != digest:
            sys.exit(f"manifest bytes do not hash to {digest}")
        media_type = json.loads(body).get("mediaType") or headers.get("Content-Type")
        self.image = {"mediaType": media_type, "digest": digest, "size": len(body)}
        self.manifest_bytes = body

    def request(self, method, path, data=None, accept=None, content_type=None, absolute=None):
        url = absolute or (self.base + path)
        request = urllib.request.Request(url, data=data, method=method)
        if self.auth:
            request.add_header("Authorization", self.auth)
        if accept:
            request.add_header("Accept", accept)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def blob(self, digest):
        status, _, body = self.request("GET", f"/blobs/{digest}")
        if status != 200 or sha256(body) != digest:
            sys.exit(f"GET blob {digest}: HTTP {status}")
        return body

    def put_blob(self, data):
        digest = sha256(data)
        status, _, _ = self.request("HEAD", f"/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, body = self.request("POST", "/blobs/uploads/", data=b"")
        if status != 202:
            sys.exit(f"POST blob upload: HTTP {status} {body[:200]!r}")
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        separator = "&" if "?" in location else "?"
        status, _, body = self.request(
            "PUT",
            None,
            data=data,
            content_type="application/octet-stream",
            absolute=f"{location}{separator}digest={urllib.parse.quote(digest)}",
        )
        if status != 201:
            sys.exit(f"PUT blob {digest}: HTTP {status} {body[:200]!r}")
        return digest

    def put_manifest(self, data, media_type, subject=None, artifact_type=None, annotations=None):
        digest = sha256(data)
        status, headers, body = self.request(
            "PUT", f"/manifests/{digest}", data=data, content_type=media_type
        )
        if status != 201:
            sys.exit(f"PUT manifest {digest}: HTTP {status} {body[:300]!r}")
        if subject is not None and not headers.get("OCI-Subject"):
            # No Referrers API: the Referrers Tag Schema (distribution spec, "Pushing Manifests
            # with Subject"): add a descriptor to the index tagged sha256-<hex of the subject>.
            tag = subject["digest"].replace(":", "-")
            status, _, body = self.request("GET", f"/manifests/{tag}", accept=OCI_INDEX)
            if status == 200:
                index = json.loads(body)
            elif status == 404:
                index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            else:
                sys.exit(f"GET {tag}: HTTP {status}")
            entry = {"mediaType": media_type, "digest": digest, "size": len(data)}
            entry["artifactType"] = artifact_type
            if annotations:
                entry["annotations"] = annotations
            if not any(m["digest"] == digest for m in index["manifests"]):
                index["manifests"].append(entry)
                status, _, body = self.request(
                    "PUT", f"/manifests/{tag}", data=canonical(index), content_type=OCI_INDEX
                )
                if status != 201:
                    sys.exit(f"PUT {tag}: HTTP {status} {body[:300]!r}")
        return digest


# ---------------------------------------------------------------------------------------------
# DSSE


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement_bytes(statement, predicate):
    """The statement as JSON text with the SBOM file's own bytes as its predicate, as a Go writer
    embedding a json.RawMessage does, so the SBOM can be restored byte for byte."""
    head = json.dumps(statement, separators=(",", ":")).encode()
    json.loads(predicate)  # the SBOM must be JSON
    return head[:-1] + b',"predicate":' + predicate + b"}"


def envelope(key, payload):
    signature = key.sign(pae(INTOTO_PAYLOAD, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "payloadType": INTOTO_PAYLOAD,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }


# ---------------------------------------------------------------------------------------------


def sbom_files(layers):
    """(escaped buildpack, layer or None, extension, path) of every launch SBOM."""
    root = os.path.join(layers, "sbom", "launch")
    out = []
    for bp in sorted(os.listdir(root)):
        bp_dir = os.path.join(root, bp)
        if not os.path.isdir(bp_dir):
            continue
        for name in sorted(os.listdir(bp_dir)):
            path = os.path.join(bp_dir, name)
            if os.path.isfile(path) and name.startswith("sbom.") and name[5:] in PREDICATE_TYPES:
                out.append((bp, None, name[5:], path))
            elif os.path.isdir(path):
                for file in sorted(os.listdir(path)):
                    if file.startswith("sbom.") and file[5:] in PREDICATE_TYPES:
                        out.append((bp, name, file[5:], os.path.join(path, file)))
    return out


def layer_sha(label, buildpack, layer):
    if buildpack == "buildpacksio/lifecycle" and layer == "launcher":
        return label["launcher"]["sha"]
    for bp in label.get("buildpacks", []):
        if bp["key"] == buildpack and layer in bp.get("layers", {}):
            return bp["layers"][layer]["sha"]
    sys.exit(f"layer {buildpack}:{layer} is not in the {LABEL} label")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen-key")
    gen.add_argument("dir")
    write = sub.add_parser("write")
    write.add_argument("image")
    write.add_argument("--layers")
    write.add_argument("--key", required=True)
    write.add_argument("--creds", default=os.environ.get("RFC_WRITER_CREDS"))
    write.add_argument("--name")
    write.add_argument("--only-image-subject", action="store_true")
    write.add_argument("--platform-sbom")
    write.add_argument("--mislabel", action="store_true")
    write.add_argument("--envelopes-dir")
    args = parser.parse_args()

    if args.command == "gen-key":
        os.makedirs(args.dir, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        with open(os.path.join(args.dir, "key.pem"), "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        with open(os.path.join(args.dir, "key.pub"), "wb") as f:
            f.write(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        return

    key = serialization.load_pem_private_key(open(args.key, "rb").read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        sys.exit("the key must be an ECDSA P-256 private key")
    store = Layout(args.image) if os.path.isdir(args.image) else Registry(args.image, args.creds)
    image = store.image
    name = args.name or store.default_name
    manifest = json.loads(store.manifest_bytes)
    config = json.loads(store.blob(manifest["config"]["digest"]))
    diff_ids = config["rootfs"]["diff_ids"]
    label = json.loads(config["config"]["Labels"][LABEL])
    ids = {bp["key"].replace("/", "_"): bp["key"] for bp in label.get("buildpacks", [])}
    ids.setdefault("buildpacksio_lifecycle", "buildpacksio/lifecycle")

    config_blob = b"{}"
    config_digest = store.put_blob(config_blob)
    image_subject = {"name": name, "digest": {"sha256": image["digest"][7:]}}

    jobs = []  # (relative path or None, predicate type, subject, buildpack id or None, bytes)
    for escaped, layer, ext, path in sbom_files(args.layers) if args.layers else []:
        buildpack = ids.get(escaped) or escaped.replace("_", "/", 1)
        data = open(path, "rb").read()
        rel = os.path.relpath(path, os.path.join(args.layers, "sbom", "launch"))
        if layer is None or args.only_image_subject:
            subject = image_subject
        elif args.mislabel and buildpack == "paketo-buildpacks/node-engine" and layer == "node":
            wrong = layer_sha(label, "paketo-buildpacks/ca-certificates", "helper")
            subject = {"name": f"{buildpack}:{layer}", "digest": {"sha256": wrong[7:]}}
        else:
            sha = layer_sha(label, buildpack, layer)
            if sha not in diff_ids:
                sys.exit(f"{buildpack}:{layer}: {sha} is not a diffID of the image")
            subject = {"name": layer, "digest": {"sha256": sha[7:]}}
        jobs.append((rel, PREDICATE_TYPES[ext], subject, buildpack, data))
    if args.platform_sbom:
        jobs.append((None, PREDICATE_TYPES["cdx.json"], image_subject, None, open(args.platform_sbom, "rb").read()))

    written = []
    for n, (rel, predicate_type, subject, buildpack, data) in enumerate(jobs):
        statement = {
            "_type": STATEMENT_V01,
            "predicateType": predicate_type,
            "subject": [subject],
        }
        env = envelope(key, statement_bytes(statement, data))
        env_bytes = json.dumps(env, separators=(",", ":")).encode()
        if args.envelopes_dir:
            os.makedirs(args.envelopes_dir, exist_ok=True)
            with open(os.path.join(args.envelopes_dir, f"{n}.json"), "wb") as f:
                f.write(env_bytes)
        env_digest = store.put_blob(env_bytes)
        layer_annotations = {
            "predicateType": predicate_type,
            "dev.cosignproject.cosign/signature": "",
        }
        if buildpack is not None:
            layer_annotations["io.buildpacks.buildpack.id"] = buildpack
        referrer = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_blob)},
            "layers": [
                {
                    "mediaType": DSSE_LAYER,
                    "digest": env_digest,
                    "size": len(env_bytes),
                    "annotations": layer_annotations,
                }
            ],
            "subject": image,
        }
        body = json.dumps(referrer, separators=(",", ":")).encode()
        if isinstance(store, Registry):
            digest = store.put_manifest(body, OCI_MANIFEST, subject=image, artifact_type=OCI_CONFIG)
        else:
            digest = store.put_manifest(body, OCI_MANIFEST)
        written.append(
            {
                "file": rel,
                "manifest": digest,
                "predicateType": predicate_type,
                "subject": subject,
                "buildpack": buildpack,
                "envelope": f"{n}.json",
            }
        )
    json.dump(written, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
