"""evidence.toml: every section read into typed settings once; an unknown key is refused with
the file, the section, the key and the keys it knows; the README's settings table names exactly
the keys the parser knows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.config import KNOWN_KEYS, SigningSettings, load_config
from evidence.errors import EvidenceError

README = Path(__file__).resolve().parents[1] / "README.md"

# A table in each section with one key misspelt, and what the message calls the section.
MISSPELT = [
    ('timezon = "Europe/Helsinki"\n', "timezon", "at the top level", ""),
    ('[company]\nnmae = "Oy"\n', "nmae", "in [company]", "company"),
    ('[mail]\nreceiving_host = ["mx"]\n', "receiving_host", "in [mail]", "mail"),
    ("[mail.limits]\nmax_part = 5\n", "max_part", "in [mail.limits]", "mail.limits"),
    ("[sync]\nhorizon = 5\n", "horizon", "in [sync]", "sync"),
    ('[[sync.mail]]\npth = "x"\n', "pth", "in [[sync.mail]] #1", "sync.mail"),
    (
        '[[sync.calls]]\npath = "x"\nformat = "csv"\nutf = true\n',
        "utf",
        "in [[sync.calls]] #1",
        "sync.calls",
    ),
    ('[[sync.recordings]]\npath = "x"\npatern = "y"\n', "patern", "in [[sync.recordings]] #1",
     "sync.recordings"),
    (
        '[[sync.imap]]\nhost = "h"\nuser = "u"\n[[sync.imap]]\nhost = "h"\nuser = "u"\n'
        'client-id = "x"\n',
        "client-id",
        "in [[sync.imap]] #2",
        "sync.imap",
    ),
    ('[[sync.graph]]\nmailbox = "m"\nfolder = "inbox"\n', "folder", "in [[sync.graph]] #1",
     "sync.graph"),
    ("[render]\ntime_limits = 5\n", "time_limits", "in [render]", "render"),
    ('[opening_hours]\nholiday = "FI"\n', "holiday", "in [opening_hours]", "opening_hours"),
    ("[reports]\nservice_level_treshold = 30\n", "service_level_treshold", "in [reports]",
     "reports"),
    ('[checkpoints]\ntrusted_key = ["a.pem"]\n', "trusted_key", "in [checkpoints]",
     "checkpoints"),
    ('[signing]\npkcs_12 = "a.p12"\n', "pkcs_12", "in [signing]", "signing"),
    ('[timestamping]\nuri = "http://tsa"\n', "uri", "in [timestamping]", "timestamping"),
    ("[desk]\nmax_upload = 5\n", "max_upload", "in [desk]", "desk"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "key", "where", "section"), MISSPELT)
def test_a_misspelt_key_in_each_section_is_refused(
    tmp_path: Path, toml: str, key: str, where: str, section: str
) -> None:
    (tmp_path / "evidence.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(EvidenceError) as caught:
        load_config({"EVIDENCE_HOME": str(tmp_path)})
    known = ", ".join(sorted(KNOWN_KEYS[section]))
    assert str(caught.value) == (
        f"{tmp_path / 'evidence.toml'}: unknown key {key!r} {where}: the keys it knows are {known}"
    )


def test_the_cli_refuses_a_misspelt_key_in_one_line_with_exit_1(tmp_path: Path) -> None:
    """In a fresh process, before the store is even opened: nothing is done."""
    (tmp_path / "evidence.toml").write_text(
        '[company]\nname = "Oy"\n\n[reports]\nservice_level_treshold = 30\n', encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", "init"],
        env={**os.environ, "EVIDENCE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr == (
        f"evidence: {tmp_path / 'evidence.toml'}: unknown key 'service_level_treshold' in "
        "[reports]: the keys it knows are service_level_threshold\n"
    )
    assert not (tmp_path / "evidence.db").exists()


def _readme_table_keys() -> set[tuple[str, str]]:
    """(section, key) for every key the `evidence.toml` column of the settings table names:
    ``[section] key`` starts a section, a bare ``key`` is in the last one named in its row."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| setting | environment | `evidence.toml` | default |") :]
    rows = table[: table.index("\n\n")].splitlines()[2:]
    found: set[tuple[str, str]] = set()
    for row in rows:
        cell = row.split(" | ")[2]
        section = ""
        for token in re.findall(r"`([^`]+)`", cell):
            named = re.fullmatch(r"\[\[?([a-z_.]+)\]\]? ([a-z_0-9]+)", token)
            if named:
                section, token = named.groups()
            found.add((section, token))
    return found


def _known_keys() -> set[tuple[str, str]]:
    """What the parser knows, less the keys that are only the name of a documented section."""
    known = {(section, key) for section, keys in KNOWN_KEYS.items() for key in keys}
    tables = {tuple(s.rsplit(".", 1)) if "." in s else ("", s) for s in KNOWN_KEYS if s}
    return known - tables


def test_the_readme_settings_table_names_every_key_the_parser_knows_and_no_other() -> None:
    documented = _readme_table_keys()
    assert documented == _known_keys(), (
        "in the README, not known: " + str(sorted(documented - _known_keys()))
        + "; known, not in the README: " + str(sorted(_known_keys() - documented))
    )  # fmt: skip


def test_every_toml_example_in_the_readme_is_read(tmp_path: Path) -> None:
    found = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    examples = [e for e in found if "[columns]" not in e]  # not a CSV mapping file
    assert len(examples) >= 4
    for example in examples:
        (tmp_path / "evidence.toml").write_text(example, encoding="utf-8")
        load_config({"EVIDENCE_HOME": str(tmp_path)})


def test_every_documented_key_lands_in_its_typed_setting(tmp_path: Path) -> None:
    (tmp_path / "evidence.toml").write_text(
        """
database_url = "sqlite:////elsewhere/e.db"
timezone = "Europe/Stockholm"
phone_region = "SE"
language = "sv"
[company]
name = "Aurora Energia Oy"
mail_domains = ["Aurora-Energia.example"]
[mail]
receiving_hosts = ["MX*.aurora-energia.example"]
[mail.limits]
max_message_bytes = 1000
max_header_bytes = 900
max_header_line = 800
max_parts = 7
max_depth = 6
max_seconds = 2
[opening_hours]
holidays = "se"
holiday_subdivision = "AB"
[opening_hours.phone]
mon-fri = "08:00-16:00"
[opening_hours.phone.exceptions]
2026-12-23 = "08:00-12:00"
[opening_hours.email]
mon = "closed"
[reports]
service_level_threshold = 30
[render]
time_limit = 4
memory_limit_mb = 512
[sync]
horizon_days = 7
[[sync.mail]]
path = "mail"
[[sync.calls]]
path = "/var/log/cdr.csv"
format = "asterisk-cdr"
utc = true
[[sync.recordings]]
path = "rec"
pattern = '(\\d+)'
[[sync.imap]]
name = "palvelu"
host = "imap.example"
user = "palvelu@example"
port = 1993
security = "starttls"
folders = "INBOX"
since = "2026-01-01"
cafile = "/etc/ca.pem"
auth = "oauth2"
provider = "microsoft"
tenant = "example"
client_id = "app"
client_certificate = "/etc/app.pem"
service_account = "/etc/sa.json"
token_url = "https://login.example/token"
scope = "imap"
[[sync.graph]]
name = "m365"
mailbox = "palvelu@example"
folders = ["inbox", "sentitems"]
since = "1.1.2026"
graph_url = "http://127.0.0.1:9/v1.0"
tenant = "example"
client_id = "app"
client_certificate = "app.pem"
token_url = "https://login.example/token"
scope = "graph"
[checkpoints]
key = "ck.pem"
trusted_keys = ["/keys/colleague.pub.pem"]
[signing]
pkcs12 = "sign.p12"
key = "k.pem"
certificate = "c.pem"
chain = ["i.pem"]
passphrase_env = "MY_PASS"
[timestamping]
url = "http://tsa.example/tsr"
""",
        encoding="utf-8",
    )
    config = load_config({"EVIDENCE_HOME": str(tmp_path)})
    home = tmp_path
    assert (config.database_url, config.timezone) == (
        "sqlite:////elsewhere/e.db",
        "Europe/Stockholm",
    )
    assert (config.phone_region, config.language) == ("SE", "sv")
    assert (config.company_name, config.mail_domains) == (
        "Aurora Energia Oy",
        ("aurora-energia.example",),
    )
    assert config.receiving_hosts == ("mx*.aurora-energia.example",)
    limits = config.mail.limits
    assert (limits.max_message_bytes, limits.max_parts, limits.max_seconds) == (1000, 7, 2.0)
    hours = config.opening_hours
    assert hours is not None and (hours.holidays, hours.holiday_subdivision) == ("SE", "AB")
    assert hours.channels["phone"].weekly == (("mon-fri", (0, 1, 2, 3, 4), "08:00-16:00"),)
    assert [str(d) for d, _ in hours.channels["phone"].exceptions] == ["2026-12-23"]
    assert config.reports.service_level_threshold == 30
    assert (config.render.time_limit, config.render.memory_limit_mb) == (4.0, 512)
    sync = config.sync
    assert sync.horizon_days == 7 and sync.mail[0].paths == (home / "mail",)
    assert (sync.calls[0].path, sync.calls[0].format, sync.calls[0].utc) == (
        Path("/var/log/cdr.csv"),
        "asterisk-cdr",
        True,
    )
    assert (sync.recordings[0].path, sync.recordings[0].pattern) == (home / "rec", r"(\d+)")
    imap = sync.imap[0]
    assert (imap.name, imap.host, imap.user, imap.port, imap.security) == (
        "palvelu", "imap.example", "palvelu@example", 1993, "starttls",
    )  # fmt: skip
    assert (imap.folders, imap.since, imap.cafile, imap.auth) == (
        ("INBOX",), "2026-01-01", Path("/etc/ca.pem"), "oauth2",
    )  # fmt: skip
    assert (imap.oauth.provider, imap.oauth.service_account, imap.oauth.scope) == (
        "microsoft", Path("/etc/sa.json"), "imap",
    )  # fmt: skip
    graph = sync.graph[0]
    assert (graph.mailbox, graph.folders, graph.since, graph.graph_url) == (
        "palvelu@example", ("inbox", "sentitems"), "1.1.2026", "http://127.0.0.1:9/v1.0",
    )  # fmt: skip
    assert graph.oauth.client_certificate == Path("app.pem")
    assert config.checkpoints.key == home / "ck.pem"
    assert config.checkpoints.trusted_keys == (Path("/keys/colleague.pub.pem"),)
    assert config.signing == SigningSettings(
        home / "sign.p12", home / "k.pem", home / "c.pem", (home / "i.pem",), "MY_PASS"
    )
    assert config.timestamping.url == "http://tsa.example/tsr"


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    (tmp_path / "evidence.toml").write_text(
        'timezone = "Europe/Stockholm"\ndatabase_url = "sqlite:////a.db"\n', encoding="utf-8"
    )
    config = load_config(
        {
            "EVIDENCE_HOME": str(tmp_path),
            "EVIDENCE_TIMEZONE": "Europe/Helsinki",
            "EVIDENCE_DATABASE_URL": "sqlite:////b.db",
        }
    )
    assert (config.timezone, config.database_url) == ("Europe/Helsinki", "sqlite:////b.db")


def test_an_unknown_time_zone_names_where_it_was_set(tmp_path: Path) -> None:
    (tmp_path / "evidence.toml").write_text('timezone = "Europe/Helsingfors"\n', encoding="utf-8")
    with pytest.raises(EvidenceError) as caught:
        load_config({"EVIDENCE_HOME": str(tmp_path)})
    assert str(caught.value) == (
        f"unknown time zone 'Europe/Helsingfors' (timezone in {tmp_path / 'evidence.toml'}): "
        "use an IANA name such as Europe/Helsinki"
    )
    with pytest.raises(EvidenceError, match=r"'Mars/Olympus' \(EVIDENCE_TIMEZONE\)"):
        load_config({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_TIMEZONE": "Mars/Olympus"})


def test_a_client_secret_in_the_file_is_refused_as_such(tmp_path: Path) -> None:
    (tmp_path / "evidence.toml").write_text(
        '[[sync.graph]]\nmailbox = "m"\nclient_secret = "s3cr3t"\n', encoding="utf-8"
    )
    with pytest.raises(EvidenceError) as caught:
        load_config({"EVIDENCE_HOME": str(tmp_path)})
    assert "never kept in the file; set EVIDENCE_OAUTH_CLIENT_SECRET" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_day_that_is_not_one_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "evidence.toml").write_text(
        '[opening_hours.email]\nmonday = "08:00-16:00"\n', encoding="utf-8"
    )
    with pytest.raises(EvidenceError, match=r"opening_hours.email.monday: use a day \(mon, tue"):
        load_config({"EVIDENCE_HOME": str(tmp_path)})
