"""PAdES signatures on dossiers (pyHanko), made at export; `evidence verify` checks them
(:mod:`evidence.verify.signatures`).

Optional per company, in evidence.toml::

    [signing]
    pkcs12 = "company-signing.p12"      # or: key = "key.pem" and certificate = "cert.pem"
    chain = ["intermediate-ca.pem"]     # optional CA certificates to embed
    # the passphrase, if any, comes from the environment, never from this file:
    passphrase_env = "EVIDENCE_SIGNING_PASSPHRASE"   # the default name

    [timestamping]
    url = "http://tsa.example/tsr"      # RFC 3161: the signature (and each checkpoint)

Relative paths are read from EVIDENCE_HOME.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from evidence.config import Config, SigningSettings
from evidence.errors import EvidenceError
from evidence.store.tsa import make_timestamper

FIELD_NAME = "EvidenceDossier"


def signing_configured(config: Config) -> bool:
    return config.signing is not None


def _signer(config: Config, section: SigningSettings) -> Any:
    from pyhanko.sign import signers

    env_name = section.passphrase_env
    secret = os.environ.get(env_name)
    passphrase = secret.encode("utf-8") if secret else None
    chain = [str(c) for c in section.chain]
    for chain_file in chain:
        if not Path(chain_file).is_file():
            raise EvidenceError(f"[signing] chain: {chain_file} is not a file")
    if section.pkcs12:
        source = section.pkcs12
        if not source.is_file():
            raise EvidenceError(f"[signing] pkcs12: {source} is not a file")
        signer = signers.SimpleSigner.load_pkcs12(  # type: ignore[no-untyped-call]
            str(source), ca_chain_files=chain or None, passphrase=passphrase
        )
    elif section.key and section.certificate:
        key, cert = section.key, section.certificate
        for item in (key, cert):
            if not item.is_file():
                raise EvidenceError(f"[signing]: {item} is not a file")
        source = key
        signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(key), str(cert), ca_chain_files=chain or None, key_passphrase=passphrase
        )
    else:
        raise EvidenceError(
            f"{config.config_path}: [signing] needs pkcs12 = FILE, or key = FILE and "
            "certificate = FILE"
        )
    if signer is None:
        raise EvidenceError(
            f"cannot read the signing key from {source}: wrong passphrase "
            f"(set {env_name}) or not a key and certificate"
        )
    return signer


def sign_pdf(pdf: bytes, config: Config, *, reason: str, location: str | None = None) -> bytes:
    """``pdf`` with a PAdES B-B signature (B-T with a timestamp when a TSA is set).

    Returns ``pdf`` unchanged when no [signing] is configured.
    """
    section = config.signing
    if section is None:
        return pdf
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = _signer(config, section)
    url = config.timestamping.url
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    try:
        out = signers.sign_pdf(
            writer,
            meta,
            signer=signer,
            timestamper=make_timestamper(url) if url else None,  # type: ignore[arg-type]
        )
    except EvidenceError:
        raise
    except Exception as exc:  # pyHanko's signing and timestamp errors
        raise EvidenceError(f"could not sign the dossier: {exc}") from exc
    return bytes(out.getvalue())
