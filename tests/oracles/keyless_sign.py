"""Keyless DSSE signing with sigstore-python (an implementation independent of cnb-attest).

usage: python keyless_sign.py TRUST_CONFIG TOKEN_FILE STATEMENT_JSON_FILE OUT_BUNDLE

Signs the in-toto statement in STATEMENT_JSON_FILE as a DSSE envelope with a Fulcio certificate
issued for the OIDC token in TOKEN_FILE, logs it in the Rekor of TRUST_CONFIG (a
ClientTrustConfig), and writes the Sigstore bundle (v0.3 JSON) to OUT_BUNDLE.
Exits 1 with the reason on any failure.
"""

import json
import sys

from sigstore.dsse import Statement
from sigstore.models import ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    trust_config, token_file, statement_file, out = argv[1:]
    with open(trust_config) as f:
        config = ClientTrustConfig.from_json(f.read())
    with open(token_file) as f:
        token = IdentityToken(f.read().strip())
    with open(statement_file, "rb") as f:
        raw = f.read()
    # sigstore-python signs the statement's bytes as given (no re-serialization).
    json.loads(raw)
    statement = Statement(raw)
    context = SigningContext.from_trust_config(config)
    # cache=True: in sigstore 4.5.1, cache=False draws a fresh ephemeral key on every use of
    # `_private_key`, so the envelope is signed with a key other than the certificate's (a real
    # Rekor, and the fake, reject the entry). With cache=True sigstore-python refuses a
    # certificate that has already expired (ExpiredCertificate) before signing.
    with context.signer(token, cache=True) as signer:
        bundle = signer.sign_dsse(statement)
    with open(out, "w") as f:
        f.write(bundle.to_json())
    print(f"signed {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as error:  # report the failure on one line for the tests
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
