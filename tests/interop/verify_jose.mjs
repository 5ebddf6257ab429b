// Verifies Tollgate tokens with `jose` (npm) against a JWKS URL.
// Usage: node verify_jose.mjs JWKS_URL ISSUER AUDIENCE < tokens (one per line)
// Prints one line per token: "ok <alg>" or "fail <reason>".
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createInterface } from 'node:readline';

const [jwksUrl, issuer, audience] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL(jwksUrl));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const token = line.trim();
  if (!token) continue;
  try {
    const { protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'sub', 'jti'],
    });
    console.log(`ok ${protectedHeader.alg}`);
  } catch (e) {
    console.log(`fail ${e.code || e.name}`);
  }
}
