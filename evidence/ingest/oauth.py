"""OAuth 2.0 access tokens for hosted mailboxes (IMAP XOAUTH2, Microsoft Graph).

Only app-only grants: no person's password and no refresh token to look after.

- Microsoft Entra ID: client credentials, with a client secret
  (``EVIDENCE_OAUTH_CLIENT_SECRET``) or a certificate (a client assertion: a JWT
  signed RS256 with the certificate's key, RFC 7523).
- Google Workspace: a service account with domain-wide delegation (JWT bearer
  grant, RFC 7523), acting as the mailbox's user.
- Any other provider: ``--token-url`` with client credentials.

A token is fetched for each run and kept only in memory. Neither the secret nor
the token is ever printed, logged or stored: errors name the endpoint and the
client, and say what the endpoint answered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from evidence.config import CLIENT_SECRET_VARIABLE, OAuthSettings
from evidence.errors import EvidenceError, InvalidInput

PROVIDERS = ("microsoft", "google")
MICROSOFT_IMAP_HOST = "outlook.office365.com"
GOOGLE_IMAP_HOST = "imap.gmail.com"
MICROSOFT_IMAP_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 600


def microsoft_token_url(tenant: str) -> str:
    return (
        f"https://login.microsoftonline.com/{urllib.parse.quote(tenant, safe='')}/oauth2/v2.0/token"
    )


@dataclass(frozen=True)
class BearerToken:
    """An access token; its value never shows in a repr, a log line or an error."""

    value: str = field(repr=False)
    expires_at: float = 0.0  # time.time() after which it is no good


@dataclass(frozen=True)
class OAuthClient:
    """How to get a token: the endpoint, the scope and the client's credential.

    One of ``certificate`` (a PEM holding the certificate and its private key),
    ``service_account`` (a Google key file) or neither (the client secret from
    ``EVIDENCE_OAUTH_CLIENT_SECRET``).
    """

    token_url: str
    scope: str
    client_id: str | None = None
    certificate: Path | None = None
    service_account: Path | None = None
    subject: str | None = None  # Google: the user the service account acts as

    @property
    def who(self) -> str:
        return self.client_id or str(self.service_account)


@dataclass(frozen=True)
class OAuthOptions:
    """What the user said (options or an ``evidence.toml`` source), before it is checked."""

    provider: str | None = None  # microsoft, google, or None with token_url
    tenant: str | None = None
    client_id: str | None = None
    certificate: Path | None = None
    service_account: Path | None = None
    token_url: str | None = None
    scope: str | None = None

    @classmethod
    def from_settings(cls, settings: OAuthSettings) -> OAuthOptions:
        """From a ``[[sync.imap]]`` or ``[[sync.graph]]`` entry's keys (read by evidence.config)."""
        return cls(
            provider=settings.provider,
            tenant=settings.tenant,
            client_id=settings.client_id,
            certificate=settings.client_certificate,
            service_account=settings.service_account,
            token_url=settings.token_url,
            scope=settings.scope,
        )


def oauth_client(options: OAuthOptions, *, purpose: str, user: str | None) -> OAuthClient:
    """The client the options describe (``purpose``: imap or graph), checked; every error
    says which option is missing."""
    provider, tenant, client_id = options.provider, options.tenant, options.client_id
    certificate, service_account = options.certificate, options.service_account
    token_url, scope = options.token_url, options.scope
    if provider is not None and provider not in PROVIDERS:
        raise InvalidInput(f"unknown OAuth provider {provider!r}: use microsoft or google")
    if provider == "google" or (service_account is not None and provider is None):
        if service_account is None:
            raise InvalidInput("--provider google needs --service-account KEY.json")
        if certificate is not None:
            raise InvalidInput("--client-certificate is for Microsoft; Google uses the key file")
        key = _service_account(service_account)
        return OAuthClient(
            token_url=token_url or str(key.get("token_uri") or GOOGLE_TOKEN_URL),
            scope=scope or GOOGLE_MAIL_SCOPE,
            client_id=str(key["client_email"]),
            service_account=service_account,
            subject=user,
        )
    if service_account is not None:
        raise InvalidInput("--service-account is for --provider google")
    if not client_id:
        raise InvalidInput("OAuth needs --client-id (the application (client) ID)")
    if provider == "microsoft":
        if not tenant and not token_url:
            raise InvalidInput("--provider microsoft needs --tenant (the directory (tenant) ID)")
        default_scope = MICROSOFT_GRAPH_SCOPE if purpose == "graph" else MICROSOFT_IMAP_SCOPE
        return OAuthClient(
            token_url=token_url or microsoft_token_url(str(tenant)),
            scope=scope or default_scope,
            client_id=client_id,
            certificate=certificate,
        )
    if not token_url:
        raise InvalidInput(
            "OAuth needs --provider microsoft, --provider google, or --token-url URL"
        )
    return OAuthClient(
        token_url=token_url, scope=scope or "", client_id=client_id, certificate=certificate
    )


def fetch_token(
    client: OAuthClient, environ: Mapping[str, str] | None = None, timeout: float = 30
) -> BearerToken:
    """A fresh access token from the client's token endpoint."""
    env = os.environ if environ is None else environ
    _check_endpoint(client.token_url)
    if client.service_account is not None:
        form = _service_account_grant(client, client.service_account)
    else:
        form = _client_credentials_grant(client, env)
    answer = _request_token(client, form, timeout)
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise EvidenceError(f"the token endpoint {client.token_url} sent no access_token")
    try:
        lifetime = float(answer.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600.0  # the endpoint did not say in seconds: assume an hour, as is usual
    return BearerToken(token, time.time() + lifetime)


def _service_account_grant(client: OAuthClient, service_account: Path) -> dict[str, str]:
    """The token request of a service account: a JWT signed with its key, valid an hour."""
    key = _service_account(service_account)
    now = int(time.time())
    claims = {
        "iss": key["client_email"],
        "scope": client.scope,
        "aud": client.token_url,
        "iat": now,
        "exp": now + 3600,
    }
    if client.subject:
        claims["sub"] = client.subject
    header = {"alg": "RS256", "typ": "JWT"}
    if key.get("private_key_id"):
        header["kid"] = str(key["private_key_id"])
    private = _private_key(str(key["private_key"]).encode(), service_account)
    return {"grant_type": JWT_BEARER_GRANT, "assertion": sign_jwt(header, claims, private)}


def _client_credentials_grant(client: OAuthClient, env: Mapping[str, str]) -> dict[str, str]:
    """The token request of an app: its certificate's assertion, or its secret from ``env``."""
    assert client.client_id is not None
    form = {"grant_type": "client_credentials", "client_id": client.client_id}
    if client.scope:
        form["scope"] = client.scope
    if client.certificate is not None:
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = client_assertion(client)
    else:
        secret = env.get(CLIENT_SECRET_VARIABLE)
        if not secret:
            raise InvalidInput(
                f"no client secret for {client.client_id}: set {CLIENT_SECRET_VARIABLE}, "
                "or use --client-certificate PEM"
            )
        form["client_secret"] = secret
    return form


def _request_token(client: OAuthClient, form: dict[str, str], timeout: float) -> dict[str, Any]:
    """POST ``form`` to the token endpoint; its JSON answer, or why it could not be had."""
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        client.token_url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = _json(response.read())
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc.read())
        raise InvalidInput(
            f"the token endpoint {client.token_url} refused {client.who}: {detail or exc.code}; "
            "check the client ID, secret or certificate and the app's permissions"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EvidenceError(
            f"cannot reach the token endpoint {client.token_url}: {reason}"
        ) from None
    return answer


def client_assertion(client: OAuthClient) -> str:
    """A client assertion for Entra ID: a JWT signed with the certificate's key.

    The header names the certificate by its SHA-1 thumbprint (``x5t``, as Entra ID
    wants) and its SHA-256 thumbprint (``x5t#S256``).
    """
    assert client.certificate is not None and client.client_id is not None
    pem = _read(client.certificate)
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidInput(
            f"{client.certificate} holds no PEM certificate: put the certificate and its "
            "private key in one PEM file"
        ) from None
    key = _private_key(pem, client.certificate)
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {
        "alg": "RS256",
        "typ": "JWT",
        "x5t": _b64url(hashlib.sha1(der).digest()),  # the thumbprint Entra ID asks for
        "x5t#S256": _b64url(hashlib.sha256(der).digest()),
    }
    now = int(time.time())
    claims = {
        "aud": client.token_url,
        "iss": client.client_id,
        "sub": client.client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
    }
    return sign_jwt(header, claims, key)


def sign_jwt(header: Mapping[str, Any], claims: Mapping[str, Any], key: rsa.RSAPrivateKey) -> str:
    """A compact JWS, RS256."""
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


def xoauth2(user: str, token: BearerToken) -> bytes:
    """The SASL XOAUTH2 initial response (before base64)."""
    return f"user={user}\x01auth=Bearer {token.value}\x01\x01".encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def _private_key(pem: bytes, where: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{where} holds no unencrypted private key: the PEM needs the certificate's key too"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidInput(f"the key in {where} is not an RSA key (RS256 needs one)")
    return key


def _service_account(path: Path) -> dict[str, Any]:
    try:
        key = json.loads(_read(path))
    except ValueError:
        raise InvalidInput(f"{path} is not a service account key (JSON)") from None
    if not isinstance(key, dict) or not key.get("client_email") or not key.get("private_key"):
        raise InvalidInput(
            f"{path} is not a service account key: it needs client_email and private_key "
            "(download a JSON key for the service account)"
        )
    return key


def _check_endpoint(url: str) -> None:
    from evidence.ingest.imap import is_loopback

    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return
    raise InvalidInput(
        f"refusing to send credentials to {url}: the token endpoint must be https "
        "(plain http only on this machine)"
    )


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_text(data: bytes) -> str:
    """``error: first line of error_description``, as the endpoint sent them."""
    answer = _json(data)
    error = str(answer.get("error") or "")
    description = str(answer.get("error_description") or "").strip().splitlines()
    first = description[0][:300] if description else ""
    return ": ".join(part for part in (error, first) if part)
