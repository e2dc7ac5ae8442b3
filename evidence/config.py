"""Settings: environment variables over an optional ``evidence.toml`` in EVIDENCE_HOME.

Every section of the file is read once, by ``load_config``, into frozen dataclasses; a key
the parser does not know is refused with the file, the section, the key and the keys it
knows, so a misspelt setting never goes unnoticed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from evidence.domain import CallLogFormat
from evidence.errors import EvidenceError, InvalidInput
from evidence.files import write_atomic

DEFAULT_TIMEZONE = "Europe/Helsinki"
CONFIG_FILE = "evidence.toml"
DEFAULT_HORIZON_DAYS = 60  # planned incidents materialised this far ahead
DEFAULT_THRESHOLD = 60  # seconds: the service level's "answered within"
DEFAULT_HOLIDAYS = "FI"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # the keys of [opening_hours.phone]
CLIENT_SECRET_VARIABLE = "EVIDENCE_OAUTH_CLIENT_SECRET"


MB = 1024 * 1024


@dataclass(frozen=True)
class MailLimits:
    """Limits for hostile input; ``[mail.limits]`` in evidence.toml overrides them."""

    max_message_bytes: int = 50 * MB
    max_header_bytes: int = 256 * 1024  # one header section
    max_header_line: int = 32 * 1024  # one physical header line
    max_parts: int = 1_000
    max_depth: int = 50  # MIME nesting, multiparts and attached messages together
    max_seconds: float = 10.0  # wall time to read one message

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> MailLimits:
        """Build from the ``[mail.limits]`` table, its keys already checked."""
        values: dict[str, Any] = {}
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"[mail.limits] {key} must be a positive number")
            values[key] = float(value) if key == "max_seconds" else int(value)
        return cls(**values)


# --- the sections -----------------------------------------------------------------


@dataclass(frozen=True)
class CompanySettings:
    """``[company]``: whose store this is; own domains make directions."""

    name: str = ""
    mail_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class MailSettings:
    """``[mail]``: ``receiving_hosts`` are patterns (fnmatch, case-insensitive) of the hosts
    whose Received: line is our receive time (empty: the topmost Received: that parses);
    ``[mail.limits]`` the limits for hostile input."""

    receiving_hosts: tuple[str, ...] = ()
    limits: MailLimits = field(default_factory=MailLimits)


@dataclass(frozen=True)
class MailSource:
    """``[[sync.mail]]``: files, mboxes and Maildirs."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class CallsSource:
    """``[[sync.calls]]``: a phone system's call log."""

    path: Path
    format: CallLogFormat
    utc: bool = False


@dataclass(frozen=True)
class RecordingsSource:
    """``[[sync.recordings]]``: a folder of call recordings."""

    path: Path
    pattern: str | None = None


@dataclass(frozen=True)
class OAuthSettings:
    """The app-only OAuth 2.0 keys of a ``[[sync.imap]]`` or ``[[sync.graph]]`` entry."""

    provider: str | None = None
    tenant: str | None = None
    client_id: str | None = None
    client_certificate: Path | None = None
    service_account: Path | None = None
    token_url: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class ImapSource:
    """``[[sync.imap]]``: handed to the IMAP importer, as ``evidence import imap``."""

    number: int
    name: str | None = None
    host: str | None = None
    user: str | None = None
    port: int | None = None
    security: str | None = None
    folders: tuple[str, ...] = ("INBOX",)
    since: str | None = None
    cafile: Path | None = None
    auth: str = "password"
    oauth: OAuthSettings = field(default_factory=OAuthSettings)


@dataclass(frozen=True)
class GraphSource:
    """``[[sync.graph]]``: handed to the Graph importer, as ``evidence import graph``."""

    number: int
    name: str | None = None
    mailbox: str | None = None
    folders: tuple[str, ...] = ("inbox",)
    since: str | None = None
    graph_url: str | None = None
    oauth: OAuthSettings = field(default_factory=OAuthSettings)


@dataclass(frozen=True)
class SyncSettings:
    """``[sync]``: the sources of ``evidence sync``, each kind in the order they run."""

    horizon_days: int = DEFAULT_HORIZON_DAYS
    mail: tuple[MailSource, ...] = ()
    calls: tuple[CallsSource, ...] = ()
    recordings: tuple[RecordingsSource, ...] = ()
    imap: tuple[ImapSource, ...] = ()
    graph: tuple[GraphSource, ...] = ()


@dataclass(frozen=True)
class RenderSettings:
    """``[render]``: limits for each render worker (None: the default, or the variable)."""

    time_limit: float | None = None
    memory_limit_mb: int | None = None


@dataclass(frozen=True)
class ChannelHoursSettings:
    """``[opening_hours.phone]`` or ``.email``: each day or range of days as written
    (``mon-thu``), its weekdays (0 = Monday) and its hours as written; ``exceptions``: dates
    to hours."""

    weekly: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    exceptions: tuple[tuple[dt.date, str], ...] = ()


@dataclass(frozen=True)
class OpeningHoursSettings:
    """``[opening_hours]``; None on Config when the section is not there (always open)."""

    channels: Mapping[str, ChannelHoursSettings] = field(default_factory=dict)
    holidays: str | None = DEFAULT_HOLIDAYS
    holiday_subdivision: str | None = None


@dataclass(frozen=True)
class ReportsSettings:
    """``[reports]``: seconds within which a call counts as answered in time."""

    service_level_threshold: int = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class CheckpointSettings:
    """``[checkpoints]``: the Ed25519 key that signs checkpoints (None: in EVIDENCE_HOME)."""

    key: Path | None = None
    trusted_keys: tuple[Path, ...] = ()  # other keys whose checkpoints `verify` accepts


@dataclass(frozen=True)
class SigningSettings:
    """``[signing]``: the PAdES signing key; None on Config when the dossier is not signed."""

    pkcs12: Path | None = None
    key: Path | None = None
    certificate: Path | None = None
    chain: tuple[Path, ...] = ()
    passphrase_env: str = "EVIDENCE_SIGNING_PASSPHRASE"


@dataclass(frozen=True)
class TimestampingSettings:
    """``[timestamping]``: the RFC 3161 time-stamping authority (None: off)."""

    url: str | None = None


@dataclass(frozen=True)
class DeskSettings:
    """``[desk]``: the web desk's upload limit, the proxies whose ``user_header`` is believed
    (single sign-on), Secure cookies (None: when the request came over HTTPS), processes."""

    max_upload_bytes: int = 50 * 1024 * 1024
    trusted_proxies: tuple[str, ...] = ()
    user_header: str = "X-Forwarded-User"
    secure_cookies: bool | None = None
    workers: int = 2


@dataclass(frozen=True)
class Config:
    home: Path
    database_url: str
    timezone: str = DEFAULT_TIMEZONE
    phone_region: str = "FI"
    language: str = "fi"
    company: CompanySettings = field(default_factory=CompanySettings)
    mail: MailSettings = field(default_factory=MailSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    opening_hours: OpeningHoursSettings | None = None
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    checkpoints: CheckpointSettings = field(default_factory=CheckpointSettings)
    signing: SigningSettings | None = None
    timestamping: TimestampingSettings = field(default_factory=TimestampingSettings)
    desk: DeskSettings = field(default_factory=DeskSettings)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def company_name(self) -> str:
        return self.company.name

    @property
    def mail_domains(self) -> tuple[str, ...]:
        return self.company.mail_domains

    @property
    def receiving_hosts(self) -> tuple[str, ...]:
        return self.mail.receiving_hosts


def default_home() -> Path:
    return Path.home() / ".local" / "share" / "evidence"


# --- reading evidence.toml ---------------------------------------------------------

_OAUTH_KEYS = ("tenant", "client_id", "client_certificate", "token_url", "scope")
# Every key the parser knows, by section ("" is the top level). The README's settings table
# names each of them (tests/test_config.py holds the two together).
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": (
        "database_url", "timezone", "phone_region", "language", "company", "mail", "sync",
        "render", "opening_hours", "reports", "checkpoints", "signing", "timestamping", "desk",
    ),
    "company": ("name", "mail_domains"),
    "mail": ("receiving_hosts", "limits"),
    "mail.limits": tuple(MailLimits.__dataclass_fields__),
    "sync": ("horizon_days", "mail", "calls", "recordings", "imap", "graph"),
    "sync.mail": ("path", "paths"),
    "sync.calls": ("path", "format", "utc"),
    "sync.recordings": ("path", "pattern"),
    "sync.imap": (
        "name", "host", "user", "port", "security", "folders", "since", "cafile", "auth",
        "provider", "service_account", *_OAUTH_KEYS,
    ),
    "sync.graph": ("name", "mailbox", "folders", "since", "graph_url", *_OAUTH_KEYS),
    "render": ("time_limit", "memory_limit_mb"),
    "opening_hours": ("holidays", "holiday_subdivision", "phone", "email"),
    "reports": ("service_level_threshold",),
    "checkpoints": ("key", "trusted_keys"),
    "signing": ("pkcs12", "key", "certificate", "chain", "passphrase_env"),
    "timestamping": ("url",),
    "desk": ("max_upload_mb", "trusted_proxies", "user_header", "secure_cookies", "workers"),
}  # fmt: skip
SYNC_SOURCE_KINDS = ("mail", "calls", "recordings", "imap", "graph")


class _Reader:
    """Reads one evidence.toml: its path for messages, EVIDENCE_HOME for relative paths."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path, self.home = path, home

    def table(self, value: object, where: str, label: str | None = None) -> dict[str, Any]:
        """``value`` as a table, with every key one of ``KNOWN_KEYS[where]``; ``label``: what
        messages call it (``[where]`` unless given)."""
        label = label or f"[{where}]"
        if not isinstance(value, dict):
            raise EvidenceError(f"{self.path}: {label} must be a table")
        keys = KNOWN_KEYS[where]
        for key in value:
            if key not in keys:
                place = f"in {label}" if where else "at the top level"
                raise EvidenceError(
                    f"{self.path}: unknown key {key!r} {place}: "
                    f"the keys it knows are {', '.join(sorted(keys))}"
                )
        return value

    def path_of(self, value: object, where: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise EvidenceError(f"evidence.toml: {where} must be a path")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    def text(self, entry: Mapping[str, Any], name: str, where: str) -> str | None:
        value = entry.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise EvidenceError(f"evidence.toml: {where} {name} must be text")
        return value


def _company(reader: _Reader, raw: object) -> CompanySettings:
    company = reader.table(raw, "company")
    domains = company.get("mail_domains", [])
    if not isinstance(domains, list):
        raise EvidenceError(f"{reader.path}: company.mail_domains must be a list of domains")
    return CompanySettings(
        str(company.get("name", "")), tuple(str(d).lower().strip() for d in domains)
    )


def _mail(reader: _Reader, raw: object) -> MailSettings:
    mail = reader.table(raw, "mail")
    hosts = mail.get("receiving_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise EvidenceError(
            f"{reader.path}: mail.receiving_hosts must be a list of host names or patterns, "
            'e.g. ["mx*.aurora-energia.example"]'
        )
    try:
        limits = MailLimits.from_settings(reader.table(mail.get("limits", {}), "mail.limits"))
    except ValueError as exc:
        raise EvidenceError(f"{reader.path}: {exc}") from exc
    return MailSettings(tuple(h.lower().strip() for h in hosts), limits)


def _oauth(reader: _Reader, entry: Mapping[str, Any], where: str) -> OAuthSettings:
    def path(name: str) -> Path | None:
        value = reader.text(entry, name, where)
        return Path(value).expanduser() if value else None

    return OAuthSettings(
        provider=reader.text(entry, "provider", where),
        tenant=reader.text(entry, "tenant", where),
        client_id=reader.text(entry, "client_id", where),
        client_certificate=path("client_certificate"),
        service_account=path("service_account"),
        token_url=reader.text(entry, "token_url", where),
        scope=reader.text(entry, "scope", where),
    )


def _folders(entry: Mapping[str, Any], default: tuple[str, ...]) -> tuple[str, ...]:
    folders = entry.get("folders") or list(default)
    return (folders,) if isinstance(folders, str) else tuple(str(f) for f in folders)


def _imap(reader: _Reader, entry: Mapping[str, Any], number: int) -> ImapSource:
    where = "[[sync.imap]]"
    host, user = entry.get("host"), entry.get("user")
    auth = entry.get("auth", "password")
    if auth not in ("password", "oauth2"):
        raise EvidenceError('evidence.toml: [[sync.imap]] auth must be "password" or "oauth2"')
    oauth = _oauth(reader, entry, where)
    if (host is not None and not isinstance(host, str)) or not isinstance(user, str):
        raise EvidenceError("evidence.toml: [[sync.imap]] needs host and user")
    if host is None and (auth != "oauth2" or oauth.provider is None):
        raise EvidenceError("evidence.toml: [[sync.imap]] needs host and user")
    port, cafile, since = entry.get("port"), entry.get("cafile"), entry.get("since")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise EvidenceError("evidence.toml: [[sync.imap]] port must be a number")
    return ImapSource(
        number=number,
        name=str(entry["name"]) if entry.get("name") else None,
        host=host,
        user=user,
        port=port,
        security=str(entry["security"]) if entry.get("security") else None,
        folders=_folders(entry, ("INBOX",)),
        since=str(since) if since else None,
        cafile=Path(str(cafile)).expanduser() if cafile else None,
        auth=auth,
        oauth=oauth,
    )


def _graph(reader: _Reader, entry: Mapping[str, Any], number: int) -> GraphSource:
    mailbox = entry.get("mailbox")
    if not isinstance(mailbox, str) or not mailbox:
        raise EvidenceError("evidence.toml: [[sync.graph]] needs mailbox")
    since, graph_url = entry.get("since"), entry.get("graph_url")
    return GraphSource(
        number=number,
        name=str(entry["name"]) if entry.get("name") else None,
        mailbox=mailbox,
        folders=_folders(entry, ("inbox",)),
        since=str(since) if since else None,
        graph_url=str(graph_url) if graph_url else None,
        oauth=_oauth(reader, entry, "[[sync.graph]]"),
    )


def _sync(reader: _Reader, raw: object) -> SyncSettings:
    if not isinstance(raw, dict):
        raise EvidenceError("evidence.toml: [sync] must be a table")
    section = reader.table(raw, "sync")
    horizon = section.get("horizon_days", DEFAULT_HORIZON_DAYS)
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 0 <= horizon <= 3660:
        raise EvidenceError("evidence.toml: sync.horizon_days must be a whole number of days")
    found: dict[str, list[Any]] = {kind: [] for kind in SYNC_SOURCE_KINDS}
    for kind in SYNC_SOURCE_KINDS:
        entries = section.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise EvidenceError(f"evidence.toml: write each source as [[sync.{kind}]]")
        for number, raw_entry in enumerate(entries, start=1):
            if kind in ("imap", "graph") and "client_secret" in raw_entry:
                raise EvidenceError(
                    f"evidence.toml: [[sync.{kind}]]: a client secret is never kept in the "
                    f"file; set {CLIENT_SECRET_VARIABLE}"
                )
            entry = reader.table(raw_entry, f"sync.{kind}", f"[[sync.{kind}]] #{number}")
            where = f"sync.{kind} #{number}"
            if kind == "mail":
                paths = entry.get("paths", [entry["path"]] if "path" in entry else [])
                if not isinstance(paths, list) or not paths:
                    raise EvidenceError(f"evidence.toml: {where} needs path or paths")
                found[kind].append(
                    MailSource(tuple(reader.path_of(p, f"{where} paths") for p in paths))
                )
            elif kind == "calls":
                path = reader.path_of(entry.get("path"), f"{where} path")
                fmt = entry.get("format")
                if fmt not in list(CallLogFormat):
                    raise EvidenceError(
                        f"evidence.toml: {where} format must be one of {', '.join(CallLogFormat)}"
                    )
                utc = bool(entry.get("utc", False))
                found[kind].append(CallsSource(path, CallLogFormat(fmt), utc))
            elif kind == "recordings":
                path = reader.path_of(entry.get("path"), f"{where} path")
                pattern = entry.get("pattern")
                if pattern is not None and not isinstance(pattern, str):
                    raise EvidenceError(f"evidence.toml: {where} pattern must be text")
                found[kind].append(RecordingsSource(path, pattern))
            elif kind == "imap":
                found[kind].append(_imap(reader, entry, number))
            else:
                found[kind].append(_graph(reader, entry, number))
    return SyncSettings(horizon, *(tuple(found[kind]) for kind in SYNC_SOURCE_KINDS))


def _render(reader: _Reader, raw: object) -> RenderSettings:
    section = reader.table(raw, "render")
    try:
        seconds = section.get("time_limit")
        memory = section.get("memory_limit_mb")
        return RenderSettings(float(seconds) if seconds else None, int(memory) if memory else None)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"render limits must be numbers ({exc})") from exc


def _day_keys(key: str, where: str) -> tuple[int, ...]:
    low = key.strip().lower()
    if "-" in low:
        first, _, last = low.partition("-")
        if first in DAYS and last in DAYS and DAYS.index(first) <= DAYS.index(last):
            return tuple(range(DAYS.index(first), DAYS.index(last) + 1))
    elif low in DAYS:
        return (DAYS.index(low),)
    raise EvidenceError(
        f"evidence.toml: {where}.{key}: use a day (mon, tue, ..., sun), a range such as "
        "mon-fri, or an [exceptions] table"
    )


def _channel_hours(raw: Mapping[str, Any], where: str) -> ChannelHoursSettings:
    weekly: list[tuple[str, tuple[int, ...], str]] = []
    exceptions: list[tuple[dt.date, str]] = []
    for key, value in raw.items():
        if key != "exceptions":
            weekly.append((key, _day_keys(key, where), str(value)))
            continue
        if not isinstance(value, Mapping):
            raise EvidenceError(f"evidence.toml: {where}.exceptions must be a table")
        for day, hours in value.items():
            try:
                date = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
            except ValueError as exc:
                raise EvidenceError(
                    f"evidence.toml: {where}.exceptions: {day!r} is not a date (YYYY-MM-DD)"
                ) from exc
            exceptions.append((date, str(hours)))
    return ChannelHoursSettings(tuple(weekly), tuple(exceptions))


def _opening_hours(reader: _Reader, raw: object) -> OpeningHoursSettings:
    if not isinstance(raw, Mapping):
        raise EvidenceError("evidence.toml: [opening_hours] must be a table")
    section = reader.table(raw, "opening_hours")
    channels = {}
    for key, value in section.items():
        if key in ("holidays", "holiday_subdivision"):
            continue
        if not isinstance(value, Mapping):
            raise EvidenceError(
                f"evidence.toml: opening_hours.{key}: expected a table "
                f"[opening_hours.phone] or [opening_hours.email]"
            )
        channels[key] = _channel_hours(value, f"opening_hours.{key}")
    country = str(section.get("holidays", DEFAULT_HOLIDAYS) or "").strip().upper() or None
    subdivision = str(section.get("holiday_subdivision") or "").strip() or None
    return OpeningHoursSettings(channels, country, subdivision)


def _reports(reader: _Reader, raw: object) -> ReportsSettings:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{reader.path}: [reports] must be a table")
    value = reader.table(raw, "reports").get("service_level_threshold", DEFAULT_THRESHOLD)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(
            f"{reader.path}: reports.service_level_threshold must be a whole number "
            "of seconds, e.g. 60"
        )
    return ReportsSettings(value)


def _checkpoints(reader: _Reader, raw: object) -> CheckpointSettings:
    section = reader.table(raw, "checkpoints")
    key, trusted = section.get("key"), section.get("trusted_keys", [])
    if not isinstance(trusted, list):
        raise EvidenceError(f"{reader.path}: checkpoints.trusted_keys must be a list")
    return CheckpointSettings(
        reader.path_of(key, "checkpoints.key") if key else None,
        tuple(reader.path_of(t, "checkpoints.trusted_keys") for t in trusted),
    )


def _signing(reader: _Reader, raw: object) -> SigningSettings | None:
    section = reader.table(raw, "signing")
    if not section:
        return None
    chain = section.get("chain", [])
    if not isinstance(chain, list):
        raise EvidenceError(f"{reader.path}: signing.chain must be a list of files")

    def path(name: str) -> Path | None:
        value = section.get(name)
        return reader.path_of(value, f"signing.{name}") if value else None

    return SigningSettings(
        pkcs12=path("pkcs12"),
        key=path("key"),
        certificate=path("certificate"),
        chain=tuple(reader.path_of(c, "signing.chain") for c in chain),
        passphrase_env=str(section.get("passphrase_env") or "EVIDENCE_SIGNING_PASSPHRASE"),
    )


def _timestamping(reader: _Reader, raw: object) -> TimestampingSettings:
    url = reader.table(raw, "timestamping").get("url")
    return TimestampingSettings(str(url) if url else None)


def _desk(reader: _Reader, raw: object) -> DeskSettings:
    section = reader.table(raw, "desk")
    where = f"{reader.path}: desk."
    size = section.get("max_upload_mb", 50)
    proxies = section.get("trusted_proxies", [])
    header = section.get("user_header", "X-Forwarded-User")
    secure = section.get("secure_cookies")
    workers = section.get("workers", 2)
    if not isinstance(size, int | float) or isinstance(size, bool) or size <= 0:
        raise EvidenceError(f"{where}max_upload_mb is a number of megabytes, e.g. 50")
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise EvidenceError(f'{where}trusted_proxies is a list of addresses, e.g. ["127.0.0.1"]')
    if not isinstance(header, str) or not header.strip():
        raise EvidenceError(f"{where}user_header is a header name, e.g. X-Forwarded-User")
    if secure is not None and not isinstance(secure, bool):
        raise EvidenceError(f"{where}secure_cookies is true or false")
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise EvidenceError(f"{where}workers is a number from 1 to 64")
    return DeskSettings(int(size * 1024 * 1024), tuple(proxies), header.strip(), secure, workers)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    home = Path(env.get("EVIDENCE_HOME") or default_home()).expanduser()
    data: dict[str, Any] = {}
    path = home / CONFIG_FILE
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceError(f"{path} is not valid TOML ({exc}): fix or remove it") from exc
    reader = _Reader(path, home)
    reader.table(data, "")
    database_url = (
        env.get("EVIDENCE_DATABASE_URL")
        or str(data.get("database_url") or "")
        or f"sqlite:///{home / 'evidence.db'}"
    )
    timezone = env.get("EVIDENCE_TIMEZONE") or str(data.get("timezone") or DEFAULT_TIMEZONE)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        source = "EVIDENCE_TIMEZONE" if env.get("EVIDENCE_TIMEZONE") else f"timezone in {path}"
        raise EvidenceError(
            f"unknown time zone {timezone!r} ({source}): use an IANA name such as Europe/Helsinki"
        ) from exc
    hours = data.get("opening_hours")
    signing = data.get("signing")
    return Config(
        home=home,
        database_url=database_url,
        timezone=timezone,
        phone_region=str(data.get("phone_region") or "FI"),
        language=str(data.get("language") or "fi"),
        company=_company(reader, data.get("company", {})),
        mail=_mail(reader, data.get("mail", {})),
        sync=_sync(reader, data.get("sync", {})),
        render=_render(reader, data.get("render", {})),
        opening_hours=None if hours is None else _opening_hours(reader, hours),
        reports=_reports(reader, data.get("reports", {})),
        checkpoints=_checkpoints(reader, data.get("checkpoints", {})),
        signing=None if signing is None else _signing(reader, signing),
        timestamping=_timestamping(reader, data.get("timestamping", {})),
        desk=_desk(reader, data.get("desk", {})),
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
