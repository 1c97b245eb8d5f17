// A certified OpenID provider (the `oidc-provider` package) for the JWT tests, on
// 127.0.0.1. Usage: node oidc.mjs [port]   (0 or absent: any free port)
//
// It prints one JSON line when listening: {"issuer": "http://127.0.0.1:<port>"}, and
// exits when its stdin closes (so it never outlives the test that started it).
//
// Access tokens are RFC 9068 JWTs (`typ: at+jwt`) from the client-credentials grant:
// clients `client-0` … `client-99`, secret `secret`. The resource indicator chooses the
// audience and the signing algorithm: `https://api.test/<ALG>` → aud `https://api.test`,
// signed with the current key of <ALG> (RS256, PS256, ES256, ES384, EdDSA);
// `https://other.test/<ALG>` → aud `https://other.test`. Add `/short` for a 2 s token.
// Any other http(s) URL (an MCP server's canonical URL, RFC 8707) → aud that URL, RS256.
//
// Test controls (not part of the provider, under /test/):
//   POST /test/rotate?alg=ALG    a new key for ALG, published first and signing from now
//   POST /test/withdraw?kid=KID  stop publishing a key
//   POST /test/replace?kid=KID   new key material under the same kid
//   POST /test/sign {kid, alg, claims}  sign arbitrary claims with any published key's
//                                       private half (for forged-looking cases)
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const ALGS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const AUDIENCE = 'https://api.test';
const OTHER = 'https://other.test';

let serial = 0;
function newKey(alg, kid = `${alg.toLowerCase()}-${++serial}`, use = 'sig') {
  let pair;
  if (alg.startsWith('RS') || alg.startsWith('PS') || alg.startsWith('RSA')) {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg === 'ES256') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  } else if (alg === 'ES384') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  } else {
    pair = crypto.generateKeyPairSync('ed25519');
  }
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use };
}

// The published keys, in order, and which kid signs each algorithm's tokens.
let keys = ALGS.map((alg) => newKey(alg));
keys.push(newKey('RSA-OAEP', 'enc-1', 'enc'));
const signing = Object.fromEntries(keys.filter((k) => k.use === 'sig').map((k) => [k.alg, k.kid]));

const clients = Array.from({ length: 100 }, (_, i) => ({
  client_id: `client-${i}`,
  client_secret: 'secret',
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
}));

function resourceServer(indicator) {
  const url = new URL(indicator);
  if (url.origin !== AUDIENCE && url.origin !== OTHER) {
    return {
      scope: 'api',
      audience: indicator,
      accessTokenTTL: 600,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'RS256', kid: signing.RS256 } },
    };
  }
  const [alg, short] = url.pathname.slice(1).split('/');
  if (!ALGS.includes(alg)) throw new Error(`unknown algorithm in ${indicator}`);
  return {
    scope: 'api',
    audience: url.origin === OTHER ? OTHER : AUDIENCE,
    accessTokenTTL: short === 'short' ? 2 : 600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg, kid: signing[alg] } },
  };
}

let issuer;
let provider;
function build() {
  provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    ttl: { ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600 },
    enabledJWA: {
      idTokenSigningAlgValues: ALGS,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      encryption: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx, indicator) => resourceServer(indicator),
      },
    },
  });
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
}

function reply(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function control(req, res, url) {
  const param = (name) => url.searchParams.get(name);
  switch (url.pathname) {
    case '/test/rotate': {
      const key = newKey(param('alg'));
      keys = [key, ...keys];
      signing[key.alg] = key.kid;
      build();
      return reply(res, 200, { kid: key.kid });
    }
    case '/test/withdraw': {
      keys = keys.filter((k) => k.kid !== param('kid'));
      build();
      return reply(res, 200, {});
    }
    case '/test/replace': {
      const old = keys.find((k) => k.kid === param('kid'));
      keys = keys.map((k) => (k.kid === old.kid ? newKey(old.alg, old.kid, old.use) : k));
      build();
      return reply(res, 200, {});
    }
    case '/test/sign': {
      const { kid, alg, claims } = await body(req);
      const jwk = keys.find((k) => k.kid === kid);
      const { use, alg: _declared, ...material } = jwk;
      const key = await jose.importJWK(material, alg);
      const token = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
        .sign(key);
      return reply(res, 200, { token });
    }
    default:
      return reply(res, 404, {});
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/test/')) {
    control(req, res, url).catch((err) => reply(res, 500, { error: String(err) }));
    return;
  }
  provider.callback()(req, res);
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  build();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
