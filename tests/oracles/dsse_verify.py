"""Verify DSSE envelopes with securesystemslib, an implementation independent of cnb-attest.

usage: dsse_verify.py PUBLIC_KEY_PEM ENVELOPE_JSON...
Prints "verified <file>" per envelope; exits 1 on the first that does not verify.
securesystemslib picks keys by keyid; cosign-style envelopes carry keyid "", so each signature's
keyid is set to the key's own id before verifying (keyid is not covered by the signature).
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signature, SSlibKey

pem = open(sys.argv[1], "rb").read()
key = SSlibKey.from_crypto(serialization.load_pem_public_key(pem), scheme="ecdsa-sha2-nistp256")
for path in sys.argv[2:]:
    envelope = Envelope.from_dict(json.load(open(path)))
    envelope.signatures = {
        key.keyid: Signature(key.keyid, sig.signature) for sig in envelope.signatures.values()
    }
    try:
        envelope.verify([key], 1)
    except Exception as error:  # securesystemslib raises VerificationError and friends
        print(f"FAILED {path}: {type(error).__name__}: {error}")
        sys.exit(1)
    print(f"verified {path} payloadType={envelope.payload_type}")
