"""RFC 3161 timestamps from a configured time-stamping authority (TSA), over plain HTTP(S).

pyHanko builds the request and checks the reply (status, nonce); the transport
is the standard library's, so no HTTP client package is needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.error
import urllib.request

from evidence.errors import EvidenceError


class TimestampFailed(EvidenceError):
    pass


def make_timestamper(url: str, timeout: float = 10) -> object:
    """A pyHanko TimeStamper that talks to ``url`` with urllib."""
    from asn1crypto import tsp
    from pyhanko.sign.timestamps import TimeStamper

    class UrllibTimeStamper(TimeStamper):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]

        async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
            def post() -> bytes:
                request = urllib.request.Request(
                    url,
                    data=req.dump(),
                    headers={
                        "Content-Type": "application/timestamp-query",
                        "Accept": "application/timestamp-reply",
                    },
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    kind = response.headers.get("Content-Type", "")
                    if kind.split(";")[0].strip() != "application/timestamp-reply":
                        raise TimestampFailed(f"{url} did not answer with a timestamp ({kind})")
                    return bytes(response.read())

            return tsp.TimeStampResp.load(await asyncio.to_thread(post))

    return UrllibTimeStamper()


def timestamp(url: str, data: bytes) -> bytes:
    """An RFC 3161 TimeStampToken (DER) over SHA-256(``data``), from the TSA at ``url``."""
    stamper = make_timestamper(url)
    digest = hashlib.sha256(data).digest()
    try:
        token = asyncio.run(stamper.async_timestamp(digest, "sha256"))  # type: ignore[attr-defined]
    except TimestampFailed:
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise TimestampFailed(f"no timestamp from {url}: {exc}") from exc
    except Exception as exc:  # pyHanko's TimestampRequestError and ASN.1 errors
        raise TimestampFailed(f"no timestamp from {url}: {exc}") from exc
    return bytes(token.dump())
