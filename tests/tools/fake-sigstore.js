#!/usr/bin/env node
// An offline Sigstore instance for the keyless tests, on 127.0.0.1:
//   - Fulcio  POST /api/v2/signingCert     (the CA and CT log of @sigstore/mock, behind an adapter
//                                           that checks the token the way a real Fulcio would refuse it)
//   - Rekor v1 POST /api/v1/log/entries     (written here: dsse 0.0.1 entries, verified and
//             GET  /api/v1/log/entries/ID   canonicalized as real Rekor does, in a real growing
//                                           RFC 6962 Merkle tree, with SET and signed checkpoint)
// It writes trusted_root.json, signing_config.json and trust_config.json into --dir, logs every
// request to DIR/requests.jsonl ({method, path, bytes, status}; never a token or a body), then
// prints `listening http://127.0.0.1:PORT`. See tests/tools/README.md.
//
// usage: node fake-sigstore.js --dir DIR [--port N] [--rekor-max-body BYTES] [--cert-clock-offset SECONDS]
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function usage(message) {
  process.stderr.write(`fake-sigstore: ${message}\n` +
    'usage: node fake-sigstore.js --dir DIR [--port N] [--rekor-max-body BYTES] [--cert-clock-offset SECONDS]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { dir: null, port: 0, rekorMaxBody: null, certClockOffset: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    const integer = () => {
      if (!/^-?\d+$/.test(value)) usage(`${flag} takes an integer, not ${JSON.stringify(value)}`);
      return Number(value);
    };
    switch (flag) {
      case '--dir': opts.dir = value; break;
      case '--port': opts.port = integer(); break;
      case '--rekor-max-body': opts.rekorMaxBody = integer(); break;
      case '--cert-clock-offset': opts.certClockOffset = integer(); break;
      default: usage(`unknown option ${flag}`);
    }
    i++;
  }
  if (!opts.dir) usage('--dir is required');
  if (opts.port < 0 || opts.port > 65535) usage('--port must be 0..65535');
  if (opts.rekorMaxBody !== null && opts.rekorMaxBody < 0) usage('--rekor-max-body must be >= 0');
  return opts;
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const b64 = (buf) => Buffer.from(buf).toString('base64');

// RFC 8785 (JCS) for the values we sign: strings, integers, arrays, objects.
function jcs(value) {
  if (Array.isArray(value)) return '[' + value.map(jcs).join(',') + ']';
  if (value !== null && typeof value === 'object') {
    return '{' + Object.keys(value).sort().map((k) => JSON.stringify(k) + ':' + jcs(value[k])).join(',') + '}';
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
  return JSON.stringify(value);
}

// A certificate as Go's pem.EncodeToMemory writes it: 64-column base64 lines, trailing newline.
function canonicalPem(der, label = 'CERTIFICATE') {
  const lines = b64(der).match(/.{1,64}/g) || [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

// The DSSE pre-authentication encoding.
function pae(type, payload) {
  const t = Buffer.from(type, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload]);
}

// ---- RFC 6962 / RFC 9162 Merkle tree ----------------------------------------------------------
const leafHash = (data) => sha256(Buffer.concat([Buffer.from([0]), data]));
const nodeHash = (l, r) => sha256(Buffer.concat([Buffer.from([1]), l, r]));
// The largest power of two smaller than n (n > 1).
const split = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; };
// MTH(D[lo:hi]) over leaf hashes.
function rootOf(leaves, lo, hi) {
  if (hi - lo === 0) return sha256(Buffer.alloc(0));
  if (hi - lo === 1) return leaves[lo];
  const k = split(hi - lo);
  return nodeHash(rootOf(leaves, lo, lo + k), rootOf(leaves, lo + k, hi));
}
// PATH(m, D[lo:hi]) of RFC 6962 §2.1.1: the audit path, nearest sibling first.
function pathOf(leaves, m, lo, hi) {
  if (hi - lo <= 1) return [];
  const k = split(hi - lo);
  if (m < k) return [...pathOf(leaves, m, lo, lo + k), rootOf(leaves, lo + k, hi)];
  return [...pathOf(leaves, m - k, lo + k, hi), rootOf(leaves, lo, lo + k)];
}

// ---- Rekor v1 ----------------------------------------------------------------------------------
class Rekor {
  constructor(host, keyPair, globalOffset) {
    this.host = host;
    this.key = keyPair;
    this.spki = keyPair.publicKey.export({ format: 'der', type: 'spki' });
    this.logId = sha256(this.spki);
    // A decimal tree ID as in production, and a 16-hex-digit prefix for entry UUIDs.
    this.treeId = BigInt('0x' + crypto.randomBytes(8).toString('hex')) >> 1n;
    this.treePrefix = this.treeId.toString(16).padStart(16, '0');
    this.offset = globalOffset;
    this.leaves = []; // leaf hashes
    this.entries = []; // {uuid, body, integratedTime, logIndex, set}
    this.byLeaf = new Map(); // leaf hash hex -> tree index
  }

  sign(data) {
    return crypto.sign('sha256', data, this.key.privateKey); // DER ECDSA
  }

  checkpoint(size, root) {
    const note = `${this.host} - ${this.treeId}\n${size}\n${b64(root)}\n`;
    const sig = Buffer.concat([this.logId.subarray(0, 4), this.sign(Buffer.from(note))]);
    return `${note}\n\u2014 ${this.host} ${b64(sig)}\n`;
  }

  // The response object for tree index i, with a proof against the current tree.
  response(i) {
    const e = this.entries[i];
    const size = this.leaves.length;
    const root = rootOf(this.leaves, 0, size);
    return {
      [e.uuid]: {
        body: b64(e.body),
        integratedTime: e.integratedTime,
        logID: this.logId.toString('hex'),
        logIndex: e.logIndex,
        verification: {
          inclusionProof: {
            checkpoint: this.checkpoint(size, root),
            hashes: pathOf(this.leaves, i, 0, size).map((h) => h.toString('hex')),
            logIndex: i,
            rootHash: root.toString('hex'),
            treeSize: size,
          },
          signedEntryTimestamp: b64(e.set),
        },
      },
    };
  }

  // Canonicalizes a dsse 0.0.1 proposed entry as rekor:pkg/types/dsse/v0.0.1/entry.go does, after
  // verifying the envelope against the verifiers. Throws {status, message} on a bad entry.
  canonicalize(entry) {
    const bad = (message) => { throw { status: 400, message }; };
    if (!entry || typeof entry !== 'object') bad('the proposed entry is not a JSON object');
    if (entry.kind !== 'dsse' || entry.apiVersion !== '0.0.1') {
      bad(`unsupported entry kind ${JSON.stringify(entry.kind)} version ${JSON.stringify(entry.apiVersion)}: this log takes dsse 0.0.1 only`);
    }
    const content = entry.spec && entry.spec.proposedContent;
    if (!content || typeof content.envelope !== 'string') bad('spec.proposedContent.envelope must be a string');
    if (!Array.isArray(content.verifiers) || content.verifiers.length < 1) bad('spec.proposedContent.verifiers must hold at least one verifier');
    let envelope;
    try { envelope = JSON.parse(content.envelope); } catch (e) { bad(`the envelope is not JSON: ${e.message}`); }
    if (typeof envelope.payloadType !== 'string' || typeof envelope.payload !== 'string') bad('the envelope needs payloadType and payload');
    if (!Array.isArray(envelope.signatures) || envelope.signatures.length < 1) bad('the envelope has no signatures');
    const payload = Buffer.from(envelope.payload, 'base64');
    const message = pae(envelope.payloadType, payload);
    const keys = content.verifiers.map((v, n) => {
      const pem = Buffer.from(String(v), 'base64').toString('utf8');
      try {
        if (pem.includes('BEGIN CERTIFICATE')) {
          const cert = new crypto.X509Certificate(pem);
          return { key: cert.publicKey, pem: canonicalPem(cert.raw) };
        }
        const key = crypto.createPublicKey(pem);
        return { key, pem: canonicalPem(key.export({ format: 'der', type: 'spki' }), 'PUBLIC KEY') };
      } catch (e) {
        return bad(`verifier ${n} is not a PEM certificate or public key: ${e.message}`);
      }
    });
    const signatures = envelope.signatures.map((s, n) => {
      if (typeof s.sig !== 'string' || s.sig === '') bad(`envelope signature ${n} is empty`);
      const sig = Buffer.from(s.sig, 'base64');
      const signer = keys.find((k) => {
        try { return crypto.verify('sha256', message, k.key, sig); } catch { return false; }
      });
      if (!signer) bad(`envelope signature ${n} does not verify with any verifier`);
      return { signature: s.sig, verifier: b64(signer.pem) };
    });
    signatures.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
    return Buffer.from(jcs({
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(content.envelope, 'utf8')).toString('hex') },
        payloadHash: { algorithm: 'sha256', value: sha256(payload).toString('hex') },
        signatures,
      },
    }));
  }

  // POST: returns [status, response object, location].
  add(entry) {
    const body = this.canonicalize(entry);
    const leaf = leafHash(body);
    const existing = this.byLeaf.get(leaf.toString('hex'));
    if (existing !== undefined) {
      const uuid = this.entries[existing].uuid;
      return [409, { code: 409, message: `an equivalent entry already exists in the transparency log with UUID ${uuid}` }, uuid];
    }
    const i = this.leaves.length;
    const integratedTime = Math.floor(Date.now() / 1000);
    const logIndex = i + this.offset;
    const set = this.sign(Buffer.from(jcs({ body: b64(body), integratedTime, logID: this.logId.toString('hex'), logIndex })));
    const uuid = this.treePrefix + leaf.toString('hex');
    this.leaves.push(leaf);
    this.entries.push({ uuid, body, integratedTime, logIndex, set });
    this.byLeaf.set(leaf.toString('hex'), i);
    return [201, this.response(i), uuid];
  }

  get(uuid) {
    const hex = uuid.toLowerCase();
    const leaf = hex.length === 80 ? hex.slice(16) : hex;
    if (hex.length === 80 && hex.slice(0, 16) !== this.treePrefix) return null;
    const i = this.byLeaf.get(leaf);
    return i === undefined ? null : this.response(i);
  }
}

// ---- Fulcio adapter ----------------------------------------------------------------------------
function decodeJwtSegment(part) {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(part)) return null;
  try { return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')); } catch { return null; }
}

// The claims of an acceptable token, or throws {status: 401, message}.
function checkToken(token) {
  const unauthorized = (message) => { throw { status: 401, message }; };
  if (typeof token !== 'string' || token === '') unauthorized('no OIDC identity token (body credentials.oidcIdentityToken or Authorization: Bearer)');
  const parts = token.split('.');
  const header = parts.length === 3 ? decodeJwtSegment(parts[0]) : null;
  const claims = parts.length === 3 ? decodeJwtSegment(parts[1]) : null;
  if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object' || Array.isArray(claims)) {
    unauthorized('the identity token is not a JWT');
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes('sigstore')) unauthorized(`the token audience ${JSON.stringify(claims.aud)} does not include "sigstore"`);
  if (typeof claims.exp !== 'number') unauthorized('the token has no exp claim');
  if (claims.exp <= Date.now() / 1000) unauthorized(`the token expired at ${new Date(claims.exp * 1000).toISOString()}`);
  if (typeof claims.iss !== 'string' || claims.iss === '') unauthorized('the token has no iss claim');
  if (typeof claims.sub !== 'string' || claims.sub === '') unauthorized('the token has no sub claim');
  return claims;
}

// ---- server ------------------------------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let mock;
  let x509;
  try {
    mock = require('@sigstore/mock');
    x509 = require('@peculiar/x509');
  } catch (e) {
    process.stderr.write(`fake-sigstore: @sigstore/mock is not installed (run scripts/install-test-tools; set NODE_PATH): ${e.message}\n`);
    process.exit(3);
  }
  fs.mkdirSync(opts.dir, { recursive: true });
  const logFile = path.join(opts.dir, 'requests.jsonl');
  fs.writeFileSync(logFile, '');

  const keyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caKeys = keyPair();
  const ctKeys = keyPair();
  const tlogKeys = keyPair();
  const ctlog = await mock.initializeCTLog(ctKeys);
  const ca = await mock.initializeCA(caKeys, ctlog);
  // The mock takes a fixed Date as its clock; the CA's clock must move, shifted by the offset.
  const shifted = () => new Date(Date.now() + opts.certClockOffset * 1000);
  if (typeof ca.getCurrentTime !== 'function' || typeof ctlog.getCurrentTime !== 'function') {
    throw new Error('this @sigstore/mock has no getCurrentTime on its CA/CT log; pin 0.13.0');
  }
  ca.getCurrentTime = shifted;
  ctlog.getCurrentTime = shifted;
  const fulcio = mock.fulcioHandler(ca);

  let rekor = null;
  let base = null;

  async function signingCert(req, text) {
    let json;
    try { json = JSON.parse(text); } catch { throw { status: 400, message: 'the request body is not JSON' }; }
    const auth = req.headers.authorization || '';
    const bodyToken = json.credentials && json.credentials.oidcIdentityToken;
    const token = bodyToken || (auth.startsWith('Bearer ') ? auth.slice(7).trim() : '');
    const claims = checkToken(token);
    if (json.publicKeyRequest) return publicKeyCert(token, claims, json.publicKeyRequest);
    let csr = json.certificateSigningRequest;
    if (typeof csr !== 'string' || csr === '') throw { status: 400, message: 'certificateSigningRequest is required' };
    if (!csr.startsWith('-----')) csr = Buffer.from(csr, 'base64').toString('utf8');
    let parsed;
    try { parsed = new x509.Pkcs10CertificateRequest(csr); } catch (e) {
      throw { status: 400, message: `certificateSigningRequest is not a PEM CSR: ${e.message}` };
    }
    if (!(await parsed.verify())) throw { status: 400, message: 'the CSR signature does not verify (no proof of possession)' };
    const r = await fulcio.fn(JSON.stringify({ credentials: { oidcIdentityToken: token }, certificateSigningRequest: csr }));
    if (r.statusCode >= 300) throw { status: r.statusCode, message: String(r.response) };
    return [r.statusCode, JSON.parse(r.response), null];
  }

  // The other Fulcio request form (sigstore-js uses it): a public key and, as proof of
  // possession, its signature over the token's `sub`.
  async function publicKeyCert(token, claims, request) {
    const bad = (message) => { throw { status: 400, message }; };
    const content = request.publicKey && request.publicKey.content;
    if (typeof content !== 'string') bad('publicKeyRequest.publicKey.content is required');
    let key;
    try {
      key = crypto.createPublicKey(content.startsWith('-----') ? content
        : { key: Buffer.from(content, 'base64'), format: 'der', type: 'spki' });
    } catch (e) {
      bad(`publicKeyRequest.publicKey is not a PEM or DER public key: ${e.message}`);
    }
    const proof = Buffer.from(String(request.proofOfPossession || ''), 'base64');
    let proven = false;
    try { proven = crypto.verify('sha256', Buffer.from(claims.sub, 'utf8'), key, proof); } catch { proven = false; }
    if (!proven) bad('proofOfPossession is not a signature over the token subject by this key');
    const pem = key.export({ format: 'pem', type: 'spki' }).toString();
    const r = await fulcio.fn(JSON.stringify({ credentials: { oidcIdentityToken: token }, publicKeyRequest: { publicKey: { content: pem } } }));
    if (r.statusCode >= 300) throw { status: r.statusCode, message: String(r.response) };
    return [r.statusCode, JSON.parse(r.response), null];
  }

  async function handle(req, text) {
    const url = req.url.split('?')[0];
    if (req.method === 'POST' && url === '/api/v2/signingCert') return signingCert(req, text);
    if (req.method === 'POST' && url === '/api/v1/log/entries') {
      let entry;
      try { entry = JSON.parse(text); } catch { throw { status: 400, message: 'the request body is not JSON' }; }
      return rekor.add(entry);
    }
    const m = /^\/api\/v1\/log\/entries\/([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$/.exec(url);
    if (req.method === 'GET' && m) {
      const found = rekor.get(m[1]);
      if (!found) throw { status: 404, message: `no entry with UUID ${m[1]}` };
      return [200, found, null];
    }
    throw { status: 404, message: `no route for ${req.method} ${url}` };
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let bytes = 0;
    const limit = req.url.split('?')[0] === '/api/v1/log/entries' && req.method === 'POST' ? opts.rekorMaxBody : null;
    req.on('data', (c) => {
      bytes += c.length;
      // Past the limit the body is drained, not kept.
      if (limit === null || bytes <= limit) chunks.push(c);
    });
    req.on('end', async () => {
      let status;
      let payload;
      let location = null;
      try {
        if (limit !== null && bytes > limit) {
          throw { status: 413, message: `Request Entity Too Large. Limit set to ${limit}` };
        }
        [status, payload, location] = await handle(req, Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        if (e && typeof e.status === 'number') {
          status = e.status;
          payload = { code: e.status, message: e.message };
        } else {
          status = 500;
          payload = { code: 500, message: String(e && e.stack ? e.stack : e) };
          process.stderr.write(`fake-sigstore: ${req.method} ${req.url}: ${payload.message}\n`);
        }
      }
      const headers = { 'content-type': 'application/json' };
      if (location) {
        headers.location = `/api/v1/log/entries/${location}`;
        headers.etag = location;
      }
      // Logged before the response is sent, so a client that has its answer finds it logged.
      fs.appendFileSync(logFile, JSON.stringify({ method: req.method, path: req.url.split('?')[0], bytes, status }) + '\n');
      res.writeHead(status, headers);
      res.end(JSON.stringify(payload));
    });
  });

  server.on('error', (e) => {
    process.stderr.write(`fake-sigstore: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    const port = server.address().port;
    const host = `127.0.0.1:${port}`;
    base = `http://${host}`;
    rekor = new Rekor(host, tlogKeys, 1000);
    writeTrust(opts.dir, base, { ca, ctKeys, ctlog, tlogKeys });
    process.stdout.write(`listening ${base}\n`);
  });

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function writeTrust(dir, base, { ca, ctKeys, ctlog, tlogKeys }) {
  const start = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  const validFor = { start };
  const spki = (k) => k.export({ format: 'der', type: 'spki' });
  const publicKey = (k) => ({ rawBytes: b64(spki(k)), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: base, hashAlgorithm: 'SHA2_256', publicKey: publicKey(tlogKeys.publicKey),
      logId: { keyId: b64(sha256(spki(tlogKeys.publicKey))) },
    }],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: base,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor,
    }],
    ctlogs: [{
      baseUrl: base, hashAlgorithm: 'SHA2_256', publicKey: publicKey(ctKeys.publicKey),
      logId: { keyId: b64(Buffer.from(ctlog.logID)) },
    }],
    timestampAuthorities: [],
  };
  const service = { url: base, majorApiVersion: 1, validFor, operator: 'cnb-attest.test' };
  const signingConfig = {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service],
    oidcUrls: [service],
    rekorTlogUrls: [service],
    tsaUrls: [],
    rekorTlogConfig: { selector: 'ANY' },
    tsaConfig: { selector: 'ANY' },
  };
  const write = (name, value) => fs.writeFileSync(path.join(dir, name), JSON.stringify(value, null, 2) + '\n');
  write('trusted_root.json', trustedRoot);
  write('signing_config.json', signingConfig);
  write('trust_config.json', {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot,
    signingConfig,
  });
}

main().catch((e) => {
  process.stderr.write(`fake-sigstore: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
