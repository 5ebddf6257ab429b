"""Verifies Tollgate tokens with PyJWT against a JWKS URL.

Usage: verify_pyjwt.py JWKS_URL ISSUER AUDIENCE < tokens (one per line)
Prints one line per token: "ok <alg>" or "fail <reason>".
"""
import sys

import jwt

jwks_url, issuer, audience = sys.argv[1:4]
client = jwt.PyJWKClient(jwks_url, cache_keys=True)
for line in sys.stdin:
    token = line.strip()
    if not token:
        continue
    try:
        key = client.get_signing_key_from_jwt(token)
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[header["alg"]],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
        if header.get("typ") != "at+jwt":
            raise ValueError("typ is not at+jwt")
        print("ok", header["alg"], flush=True)
    except Exception as e:  # noqa: BLE001 - any failure is a "fail" line
        print("fail", type(e).__name__, flush=True)
