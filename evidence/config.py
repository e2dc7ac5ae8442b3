"""Settings: environment variables over an optional ``evidence.toml`` in EVIDENCE_HOME."""

from __future__ import annotations

import os
import re
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
    # [mail] receiving_hosts: patterns (fnmatch, case-insensitive) of the hosts whose
    # Received: line is our receive time; empty: the topmost Received: that parses.
    receiving_hosts: tuple[str, ...] = ()
    phone_region: str = "FI"
    language: str = "fi"
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE


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
    mail = data.get("mail", {})
    hosts = mail.get("receiving_hosts", []) if isinstance(mail, dict) else []
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise EvidenceError(
            f"{path}: mail.receiving_hosts must be a list of host names or patterns, "
            'e.g. ["mx*.aurora-energia.example"]'
        )
    return Config(
        home=home,
        database_url=database_url,
        timezone=timezone,
        company_name=str(company.get("name", "")),
        mail_domains=tuple(str(d).lower().strip() for d in domains),
        receiving_hosts=tuple(h.lower().strip() for h in hosts),
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
    domains = dict.fromkeys(d.lower().strip() for d in mail_domains if d.strip())
    lines.append("mail_domains = [" + ", ".join(_toml_str(d) for d in domains) + "]\n")
    write_atomic(path, "".join(lines).encode("utf-8"))
    return path


@dataclass(frozen=True)
class SettingsChange:
    """What ``update_company_settings`` changed in evidence.toml."""

    path: Path
    company_name: str | None = None  # the new name, when it changed
    added_domains: tuple[str, ...] = ()
    mail_domains: tuple[str, ...] = ()  # all of them, after the change

    @property
    def changed(self) -> bool:
        return self.company_name is not None or bool(self.added_domains)


_COMPANY = re.compile(r"^\[company\][ \t]*(#.*)?$", re.MULTILINE)
_NEXT_TABLE = re.compile(r"^\[", re.MULTILINE)


def update_company_settings(
    config: Config, company_name: str | None, mail_domains: list[str], timezone: str | None
) -> SettingsChange:
    """Apply ``init``'s options to an existing ``evidence.toml``: a new company name, more
    mail domains (added, never dropped). The time zone is refused if it differs: the
    local times already imported were read in the one in force."""
    path = config.config_path
    if timezone and timezone != config.timezone:
        raise EvidenceError(
            f"the store's time zone is {config.timezone} and stays so: local times already "
            f"imported were read in it. To use {timezone}, make a new store"
        )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = [d.lower().strip() for d in mail_domains if d.strip()]
    added = tuple(d for d in dict.fromkeys(wanted) if d not in config.mail_domains)
    name = company_name if company_name and company_name != config.company_name else None
    change = SettingsChange(path, name, added, config.mail_domains + added)
    if not change.changed:
        return change
    section = _COMPANY.search(text)
    if section is None:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + "[company]\n"
        section = _COMPANY.search(text)
        assert section is not None
    start = section.end()
    following = _NEXT_TABLE.search(text, start)
    end = following.start() if following else len(text)
    body = text[start:end]
    if name is not None:
        body = _set_key(body, "name", _toml_str(name))
    if added:
        listed = "[" + ", ".join(_toml_str(d) for d in change.mail_domains) + "]"
        body = _set_key(body, "mail_domains", listed)
    text = text[:start] + body + text[end:]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EvidenceError(f"{path}: could not be updated ({exc}): edit it by hand") from exc
    company = data.get("company", {})
    if tuple(company.get("mail_domains", [])) != change.mail_domains or (
        name is not None and company.get("name") != name
    ):
        raise EvidenceError(
            f"{path}: could not be updated safely: set [company] name and mail_domains by hand"
        )
    write_atomic(path, text.encode("utf-8"))
    return change


_VALUE = r"""(\[[^\]]*\]|"(?:[^"\\]|\\.)*"|'[^']*')"""  # an array or a string


def _set_key(body: str, key: str, value: str) -> str:
    """``key = value`` in a TOML table's text: replaced where it is, else added first."""
    pattern = re.compile(rf"^{key}[ \t]*=[ \t]*{_VALUE}[^\n]*$", re.MULTILINE)
    line = f"{key} = {value}"
    if pattern.search(body):
        return pattern.sub(lambda _match: line, body, count=1)
    return "\n" + line + body


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
