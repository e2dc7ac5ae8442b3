"""Settings: environment variables over an optional ``evidence.toml`` in EVIDENCE_HOME."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from evidence.errors import EvidenceError
from evidence.files import write_atomic

DEFAULT_TIMEZONE = "Europe/Helsinki"
CONFIG_FILE = "evidence.toml"


@dataclass(frozen=True)
class Config:
    home: Path
    database_url: str
    timezone: str = DEFAULT_TIMEZONE
    company_name: str = ""
    mail_domains: tuple[str, ...] = ()
    phone_region: str = "FI"
    language: str = "fi"
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    def is_own_address(self, address: str) -> bool:
        """True when ``address`` belongs to one of the company's own mail domains."""
        domain = address.rpartition("@")[2].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.mail_domains)


def default_home() -> Path:
    return Path.home() / ".local" / "share" / "evidence"


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    home = Path(env.get("EVIDENCE_HOME") or default_home()).expanduser()
    data: dict[str, object] = {}
    path = home / CONFIG_FILE
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceError(f"{path} is not valid TOML ({exc}): fix or remove it") from exc
    company = data.get("company", {})
    if not isinstance(company, dict):
        raise EvidenceError(f"{path}: [company] must be a table")
    database_url = (
        env.get("EVIDENCE_DATABASE_URL")
        or str(data.get("database_url") or "")
        or f"sqlite:///{home / 'evidence.db'}"
    )
    timezone = env.get("EVIDENCE_TIMEZONE") or str(data.get("timezone") or DEFAULT_TIMEZONE)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise EvidenceError(
            f"unknown time zone {timezone!r}: use an IANA name such as Europe/Helsinki"
        ) from exc
    domains = company.get("mail_domains", [])
    if not isinstance(domains, list):
        raise EvidenceError(f"{path}: company.mail_domains must be a list of domains")
    return Config(
        home=home,
        database_url=database_url,
        timezone=timezone,
        company_name=str(company.get("name", "")),
        mail_domains=tuple(str(d).lower().strip() for d in domains),
        phone_region=str(data.get("phone_region") or "FI"),
        language=str(data.get("language") or "fi"),
        extra=data,
    )


def write_initial_config(
    home: Path, company_name: str | None, mail_domains: list[str], timezone: str | None
) -> Path | None:
    """Write ``evidence.toml`` once, when it does not exist yet and there is something to say."""
    path = home / CONFIG_FILE
    if path.exists() or not (company_name or mail_domains or timezone):
        return None
    lines = ["# evidence settings; environment variables override these.\n"]
    if timezone:
        lines.append(f'timezone = "{timezone}"\n')
    lines.append("\n[company]\n")
    lines.append(f"name = {_toml_str(company_name or '')}\n")
    lines.append("mail_domains = [" + ", ".join(_toml_str(d) for d in mail_domains) + "]\n")
    write_atomic(path, "".join(lines).encode("utf-8"))
    return path


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
