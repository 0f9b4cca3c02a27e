// Verify Sigstore bundles (DSSE, public-key verification material) with @sigstore/verify, an
// implementation independent of cnb-attest.
// usage: node verify_bundle.js PUBLIC_KEY_PEM BUNDLE_JSON...
// Prints "verified <file>" per bundle; exits 1 on the first that fails.
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const [pemPath, ...bundles] = process.argv.slice(2);
const publicKey = crypto.createPublicKey(fs.readFileSync(pemPath));
// cosign 3's hint: base64 of the SHA-256 of the DER SubjectPublicKeyInfo.
const hint = crypto.createHash('sha256')
  .update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const emptyRoot = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
const trust = toTrustMaterial(emptyRoot, (h) => {
  if (h !== hint) throw new Error(`bundle names key ${h}, expected ${hint}`);
  return { publicKey, validFor: () => true };
});
const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 });
for (const path of bundles) {
  try {
    const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(path, 'utf8')));
    verifier.verify(toSignedEntity(bundle));
    console.log(`verified ${path}`);
  } catch (error) {
    console.log(`FAILED ${path}: ${error.code || error.name}: ${error.message}`);
    process.exit(1);
  }
}
