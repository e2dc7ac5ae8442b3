"""A small OAuth 2.0 server for the tests, on 127.0.0.1: it issues tokens and introspects them.

- ``POST /token``: ``client_credentials`` with a client secret, or with a signed client
  assertion (RFC 7523) checked against the client's registered certificate (its
  signature, ``x5t``, ``aud``, ``iss``/``sub`` and expiry); and the JWT bearer grant of
  a Google service account, checked against its registered public key. Errors as
  Entra ID sends them (``{"error": ..., "error_description": ...}``, HTTP 400/401).
- ``POST /introspect`` (RFC 7662, as Dovecot's oauth2 passdb asks with
  ``introspection_mode = post``): ``active`` and the mailbox the token may open.

Tokens can be issued already expired, or revoked after issue, to test refusals.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Client:
    mailbox: str  # the one mailbox the app may open (RBAC for Applications)
    secret: str | None = None
    certificate: x509.Certificate | None = None
    public_key: rsa.RSAPublicKey | None = None  # a service account's


@dataclass
class Issued:
    mailbox: str
    expires: float
    scope: str
    revoked: bool = False


@dataclass
class TokenServer:
    port: int = 0
    clients: dict[str, Client] = field(default_factory=dict)
    tokens: dict[str, Issued] = field(default_factory=dict)
    lifetime: int = 3600  # seconds; negative: issued already expired
    requests: list[dict[str, str]] = field(default_factory=list)  # every /token form
    introspections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke_all(self) -> None:
        for issued in self.tokens.values():
            issued.revoked = True

    def issue(self, mailbox: str, scope: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = Issued(mailbox, time.time() + self.lifetime, scope)
        return {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token}

    # -- the grants ----------------------------------------------------------------

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(form)
        scope = form.get("scope", "")
        if form.get("grant_type") == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""), scope)
        if form.get("grant_type") != "client_credentials":
            return 400, _error("unsupported_grant_type", "only client_credentials here")
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            return 400, _error("unauthorized_client", "AADSTS700016: application not found")
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            problem = self._check_assertion(client, form)
            if problem:
                return 401, _error("invalid_client", problem)
        elif client.secret is None or form.get("client_secret") != client.secret:
            return 401, _error(
                "invalid_client", "AADSTS7000215: Invalid client secret provided.\nTrace ID: x"
            )
        return 200, self.issue(client.mailbox, scope)

    def _check_assertion(self, client: Client, form: dict[str, str]) -> str | None:
        if client.certificate is None:
            return "AADSTS700027: no certificate registered"
        try:
            header, claims = _verify(form["client_assertion"], client.certificate.public_key())
        except (KeyError, ValueError, InvalidSignature):
            return "AADSTS700027: Client assertion contains an invalid signature."
        der = client.certificate.public_bytes(serialization.Encoding.DER)
        if header.get("x5t") != _b64(hashlib.sha1(der).digest()):
            return "AADSTS700027: the certificate with x5t was not registered"
        if claims.get("aud") != f"{self.url}/token":
            return "AADSTS700016: wrong audience"
        if claims.get("iss") != form["client_id"] or claims.get("sub") != form["client_id"]:
            return "AADSTS700023: wrong issuer"
        if int(claims.get("exp", 0)) < time.time():
            return "AADSTS700024: Client assertion is not within its valid time range."
        return None

    def _jwt_bearer(self, assertion: str, scope: str) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(_unb64(assertion.split(".")[1]))
            client = self.clients[payload["iss"]]
            assert client.public_key is not None
            _header, claims = _verify(assertion, client.public_key)
        except (KeyError, IndexError, ValueError, AssertionError, InvalidSignature):
            return 400, _error("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != f"{self.url}/token" or int(claims.get("exp", 0)) < time.time():
            return 400, _error("invalid_grant", "Invalid JWT: bad audience or expired")
        if claims.get("sub") != client.mailbox:
            return 401, _error("unauthorized_client", "Client is unauthorized for this user")
        return 200, self.issue(client.mailbox, claims.get("scope", scope))

    def introspect(self, token: str) -> dict[str, Any]:
        self.introspections += 1
        issued = self.tokens.get(token)
        if issued is None or issued.revoked or issued.expires < time.time():
            return {"active": False}
        return {"active": True, "username": issued.mailbox, "scope": issued.scope}


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify(jwt: str, key: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, signature = jwt.split(".")
    key.verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    header = json.loads(_unb64(head))
    if header.get("alg") != "RS256":
        raise ValueError("alg")
    return header, json.loads(_unb64(body))


@contextmanager
def running_token_server() -> Iterator[TokenServer]:
    state = TokenServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if self.path == "/token":
                code, answer = state.grant(form)
            elif self.path == "/introspect":
                code, answer = 200, state.introspect(form.get("token", ""))
            else:
                code, answer = 404, _error("not_found", self.path)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as port:
        state.port = port
        yield state



@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free port of 127.0.0.1 (yielded), stopped on the way out."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

def make_certificate(common_name: str) -> tuple[bytes, x509.Certificate]:
    """A self-signed certificate and its key, in one PEM (as --client-certificate reads)."""
    import datetime as dt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, cert


def make_service_account(email: str, token_url: str) -> tuple[dict[str, str], rsa.RSAPublicKey]:
    """A Google service account key file's content, and the public key Google would keep."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return (
        {
            "type": "service_account",
            "project_id": "evidence-test",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": token_url,
        },
        key.public_key(),
    )
