"""Runs the refresh token grant with Authlib, an independent OAuth 2.0
client library, as a public client (client_id only, as a browser would).

Usage: refresh_authlib.py TOKEN_URL CLIENT_ID FIRST_REFRESH_TOKEN [CA_FILE]
Prints: "access <token>" twice (refresh, refresh again), then
"reuse <error>" for the first refresh token presented again, then
"after <error>" for the newest refresh token once the family is dead.
"""
import sys

from authlib.integrations.requests_client import OAuth2Session, OAuthError

token_url, client_id, first = sys.argv[1:4]
session = OAuth2Session(client_id, token_endpoint_auth_method="none")
if len(sys.argv) > 4:
    session.verify = sys.argv[4]

t1 = session.refresh_token(token_url, refresh_token=first)
print("access", t1["access_token"], flush=True)
t2 = session.refresh_token(token_url, refresh_token=t1["refresh_token"])
print("access", t2["access_token"], flush=True)
assert t2["refresh_token"] != t1["refresh_token"] != first

for label, token in (("reuse", first), ("after", t2["refresh_token"])):
    try:
        session.refresh_token(token_url, refresh_token=token)
        print(label, "accepted", flush=True)
    except OAuthError as e:
        print(label, e.error, flush=True)
