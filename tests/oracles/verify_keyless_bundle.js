// Verify keyless Sigstore bundles (DSSE, Fulcio certificate, Rekor v1 entry) with @sigstore/verify,
// an implementation independent of cnb-attest: certificate chain, SCT (ctlogThreshold 1), Rekor
// SET, inclusion proof and checkpoint (tlogThreshold 1), DSSE signature and identity policy.
// usage: node verify_keyless_bundle.js TRUSTED_ROOT_JSON IDENTITY ISSUER BUNDLE_JSON...
// Prints "verified <file>" per bundle; exits 1 on the first that fails, with the reason.
//
// @sigstore/verify treats the policy strings as unanchored regular expressions (String.match), so
// this script also compares the certificate's SAN and issuer with IDENTITY and ISSUER exactly.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { X509Certificate } = require('@sigstore/core');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1'; // raw bytes
const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8'; // DER UTF8String

const args = process.argv.slice(2);
if (args.length < 4) {
  console.error('usage: node verify_keyless_bundle.js TRUSTED_ROOT_JSON IDENTITY ISSUER BUNDLE_JSON...');
  process.exit(2);
}
const [rootPath, identity, issuer, ...bundles] = args;
let verifier;
try {
  const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8'))));
  verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1 });
} catch (error) {
  console.log(`FAILED ${rootPath}: cannot load the trusted root: ${error.message}`);
  process.exit(1);
}

// The exact identity of a leaf certificate: its one SAN (URI or email) and its issuer extensions.
function exactIdentity(der) {
  const san = new crypto.X509Certificate(der).subjectAltName || '';
  const m = /^(URI|email):(.*)$/s.exec(san);
  if (!m || m[2].includes(', ')) throw new Error(`the certificate must have exactly one URI or email SAN, has ${JSON.stringify(san)}`);
  const cert = X509Certificate.parse(der);
  const v2 = cert.extension(OID_ISSUER_V2);
  const v1 = cert.extension(OID_ISSUER_V1);
  if (!v2) throw new Error('the certificate has no issuer extension 1.3.6.1.4.1.57264.1.8');
  const v2Value = v2.valueObj.subs && v2.valueObj.subs[0] && v2.valueObj.subs[0].value.toString('utf8');
  const v1Value = v1 ? v1.value.toString('utf8') : null;
  if (v1Value !== null && v1Value !== v2Value) {
    throw new Error(`issuer extensions differ: .1.1 ${JSON.stringify(v1Value)}, .1.8 ${JSON.stringify(v2Value)}`);
  }
  return { san: m[2], issuer: v2Value };
}

for (const path of bundles) {
  try {
    const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(path, 'utf8')));
    const signer = verifier.verify(toSignedEntity(bundle), {
      subjectAlternativeName: identity,
      extensions: { issuer },
    });
    const material = bundle.verificationMaterial.content;
    if (material.$case !== 'certificate') throw new Error(`expected a leaf certificate, found ${material.$case}`);
    const exact = exactIdentity(material.certificate.rawBytes);
    if (exact.san !== identity) throw new Error(`certificate SAN ${JSON.stringify(exact.san)} is not exactly ${JSON.stringify(identity)}`);
    if (exact.issuer !== issuer) throw new Error(`certificate issuer ${JSON.stringify(exact.issuer)} is not exactly ${JSON.stringify(issuer)}`);
    const found = signer.identity || {};
    if (found.subjectAlternativeName !== identity || (found.extensions || {}).issuer !== issuer) {
      throw new Error(`@sigstore/verify reports identity ${JSON.stringify(found)}`);
    }
    console.log(`verified ${path}`);
  } catch (error) {
    console.log(`FAILED ${path}: ${error.code || error.name}: ${error.message}`);
    process.exit(1);
  }
}
