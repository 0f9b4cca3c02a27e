#!/bin/sh
# Regenerates the certificates of this directory with OpenSSL 3 (keys are thrown away; the
# certificates are valid for ten years from the time this runs). ext.cnf holds the extensions.
set -eu
work=$(mktemp -d)
cp ext.cnf "$work/" && cd "$work"
printf '[req]\ndistinguished_name=dn\n[dn]\n' > req.cnf && cat ext.cnf >> req.cnf
for k in root inter leaf; do openssl ecparam -name prime256v1 -genkey -noout -out $k.key; done
selfsign() { openssl req -x509 -new -key root.key -sha384 -subj "$2" -days 3650 -config req.cnf -extensions "$3" -out "$1.pem"; cp root.key "$1.key" 2>/dev/null || true; }
sign() {
  openssl req -new -key "${5:-leaf}.key" -subj "$4" -config req.cnf -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -sha384 -days 3650 \
    -extfile ext.cnf -extensions "$2" -out "$1.pem"
}
selfsign root "/O=sigstore.mock/CN=sigstore" mock_ca
sign leaf leaf root "/"
sign leaf_nocodesign leaf_nocodesign root "/"
sign leaf_username leaf_username root "/"
sign leaf_mismatch leaf_mismatch root "/"
sign leaf_critical leaf_critical root "/"
selfsign root_pl0 "/O=sigstore.mock/CN=pathlen0-root" mock_ca_pl0
sign inter mock_ca root_pl0 "/O=sigstore.mock/CN=intermediate" inter
sign leaf_via_inter leaf inter "/"
selfsign root_nosign "/O=sigstore.mock/CN=nosign-root" mock_ca_nosign
sign leaf_nosign leaf root_nosign "/"
cd - >/dev/null
for f in "$work"/*.pem; do n=$(basename "$f" .pem); openssl x509 -in "$f" -outform der -out "$n.der"; done
rm -r "$work"
