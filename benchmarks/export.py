"""Benchmark: dossier export, chunked and cached, against one naive WeasyPrint call.

    .venv/bin/python benchmarks/export.py --items 1000
    .venv/bin/python benchmarks/export.py --items 1000 --whole-baseline
    .venv/bin/python benchmarks/export.py --items 10000 --no-baseline
    .venv/bin/python benchmarks/export.py --items 1000 --no-baseline --store /tmp/bench-1000

``--store DIR`` builds the store once in DIR and measures on a copy of it on later runs,
so that runs to compare (before and after a change) export the same store.

Builds a store of N items for one customer (about 60 % emails with realistic
bodies, 40 % calls with queue_log lines), then measures, each in a fresh
process so that peak RSS is its own:
  baseline  all exhibits in one HTML document, one ``write_pdf`` (what a naive
            exporter does);
  whole     with --whole-baseline: the whole dossier's HTML (front matter, index,
            exhibits, list of files) in one ``write_pdf``;
  cold      ``evidence export`` with an empty page cache;
  warm+1    one new email, then ``evidence export`` again (cache in use).
Prints seconds, pages and peak RSS (largest process, and the largest worker).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "lasku maksu eräpäivä asiakaspalvelu soitin jonossa odotin vastausta sopimus mittari "
    "lukema hyvitys muistutus perintä kiitos terveisin yhteydenotto palvelu puhelin viesti"
).split()


def _body(rng: random.Random, lines: int) -> str:
    return "\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        for _ in range(lines)
    )


def build_store(home: Path, items: int, seed: int = 7) -> None:
    from evidence.config import load_config
    from evidence.ingest.asterisk import import_calls
    from evidence.ingest.mail import import_mail
    from evidence.records.customers import add_customer
    from evidence.store.db import open_store, upgrade

    env = {"EVIDENCE_HOME": str(home)}
    os.environ.update(env)
    os.environ.pop("EVIDENCE_DATABASE_URL", None)
    (home / "evidence.toml").write_text(
        '[company]\nname = "Bench Oy"\nmail_domains = ["bench.example"]\n', encoding="utf-8"
    )
    config = load_config()
    upgrade(config)
    store = open_store(config)
    add_customer(store, "1", "Asiakas Benchmark", ["asiakas@example.net"], ["040 111 2222"])
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    mail_dir = home / "src-mail"
    mail_dir.mkdir()
    cdr, qlog = [], []
    for n in range(items):
        at = start + dt.timedelta(minutes=37 * n + rng.randint(0, 20))
        if rng.random() < 0.6:
            outbound = rng.random() < 0.3
            sender = "palvelu@bench.example" if outbound else "asiakas@example.net"
            to = "asiakas@example.net" if outbound else "palvelu@bench.example"
            stamp = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
            received = "" if outbound else f"Received: by mx.bench.example; {stamp}\n"
            msg = (
                f"{received}Date: {stamp}\nFrom: {sender}\nTo: {to}\n"
                f"Subject: Asia {n}: {rng.choice(WORDS)}\nMessage-ID: <{n}@bench>\n"
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n" + _body(rng, rng.randint(4, 25)) + "\n"
            )
            (mail_dir / f"{n:06d}.eml").write_text(msg, encoding="utf-8")
        else:
            epoch = int(at.timestamp())
            uid = f"{epoch}.{n}"
            wait = rng.randint(5, 400)
            local = at.astimezone(dt.timezone(dt.timedelta(hours=2))).replace(tzinfo=None)
            answered = rng.random() < 0.6
            cdr.append(
                f'"","0401112222","500","from-pstn","""A"" <0401112222>","PJSIP/t-{n:08x}",'
                f'"{"PJSIP/1001-0000" + format(n, "04x") if answered else ""}","Queue","q",'
                f'"{local:%Y-%m-%d %H:%M:%S}","","{local:%Y-%m-%d %H:%M:%S}","{wait}","0",'
                f'"{"ANSWERED" if answered else "NO ANSWER"}","DOCUMENTATION","{uid}",""'
            )
            qlog.append(f"{epoch}|{uid}|q|NONE|ENTERQUEUE||0401112222|1")
            if answered:
                qlog.append(f"{epoch + wait}|{uid}|q|PJSIP/1001|CONNECT|{wait}|{uid}1|3")
                qlog.append(f"{epoch + wait + 200}|{uid}|q|PJSIP/1001|COMPLETECALLER|{wait}|200|1")
            else:
                qlog.append(f"{epoch + wait}|{uid}|q|NONE|ABANDON|1|1|{wait}")
    (home / "Master.csv").write_text("\n".join(cdr) + "\n", encoding="utf-8")
    (home / "queue_log").write_text("\n".join(qlog) + "\n", encoding="utf-8")
    import_mail(store, [mail_dir])
    # The CDR's local times are EET (+2); tell the importer so.
    import_calls(store, home / "Master.csv", "asterisk-cdr")
    import_calls(store, home / "queue_log", "asterisk-queue-log")
    store.close()


def _peak() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rss_mb": round(own.ru_maxrss / 1024, 1),
        "worker_rss_mb": round(kids.ru_maxrss / 1024, 1),
        # CPU seconds of all processes: the work done, whatever the load on the machine.
        "cpu_s": round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1),
    }


def phase_baseline(home: Path, out: Path) -> dict[str, object]:
    """All exhibits in one HTML document and one write_pdf: the naive exporter."""
    from evidence.config import load_config
    from evidence.render.i18n import Formatter, translations
    from evidence.render.parts import template_environment
    from evidence.render.pool import render_pdf
    from evidence.render.views import ViewBuilder
    from evidence.store.db import open_store
    from evidence.timeline.history import build_timeline
    from evidence.timeline.mailfacts import MailRules

    os.environ["EVIDENCE_HOME"] = str(home)
    config = load_config()
    store = open_store(config)
    t0 = time.perf_counter()
    translate = translations("fi")
    env = template_environment(translate)
    with store.session() as session:
        timeline = build_timeline(session, "1", config.zone, rules=MailRules.of(config))
        builder = ViewBuilder(session, Formatter("fi", config.zone), translate.gettext)
        exhibits = builder.exhibits(timeline)
    css = (ROOT / "templates/dossier.css").read_text(encoding="utf-8")
    html = env.get_template("items.html.j2").render(
        lang="fi",
        css=css,
        version="bench",
        created="",
        doc_title="bench",
        exhibits=exhibits,
        first_chunk=True,
        day_label=str,
        kind_label={k: k for k in ("email", "call", "incident", "agent_pause")},
    )
    pdf, _refused = render_pdf(html)
    out.write_bytes(pdf)
    seconds = time.perf_counter() - t0
    import pikepdf

    with pikepdf.open(out) as doc:
        pages = len(doc.pages)
    return {"seconds": round(seconds, 2), "pages": pages, **_peak()}


def phase_whole(home: Path, out: Path) -> dict[str, object]:
    """The whole dossier's HTML (every part's body, in the dossier's order) in one
    ``write_pdf``: what a naive exporter of this document does. The parts' HTML is taken
    from the exporter itself (its renderer is handed stand-ins and the export stops)."""
    import re

    from weasyprint import HTML

    from evidence.config import load_config
    from evidence.render import dossier, pool
    from evidence.store.db import open_store

    os.environ["EVIDENCE_HOME"] = str(home)
    batches: list[list[str]] = []
    real_submit = pool.ChunkRenderer.submit

    def submit(
        self: pool.ChunkRenderer, jobs: list[pool.Job | pool.LazyJob], progress: object = None
    ) -> list[int]:
        batches.append([(j.make() if isinstance(j, pool.LazyJob) else j).html for j in jobs])
        return real_submit(self, [pool.Job("<p></p>") for _ in jobs], progress)

    pool.ChunkRenderer.submit = submit
    store = open_store(load_config())
    try:
        dossier.export_dossier(store, customer_ref="1", output=out, use_cache=False)
    except Exception:  # the stand-ins are not a dossier
        pass
    # Submitted: the front matter after the cover and the stamp's sample; the cover; the
    # index, the exhibits and the back matter.
    (*front, _stamp), [cover], rest = batches[0], batches[1], batches[2]
    ordered = [cover, *front, *rest]
    head = re.search(r"(?s)^(.*?<body[^>]*>)", cover)
    bodies = [re.search(r"(?s)<body[^>]*>(.*)</body>", html) for html in ordered]
    assert head is not None and all(bodies)
    whole = head.group(1) + "\n".join(b.group(1) for b in bodies if b) + "</body></html>"
    t0 = time.perf_counter()
    pdf = HTML(string=whole, url_fetcher=pool.SealedFetcher()).write_pdf()
    out.write_bytes(pdf)
    seconds = time.perf_counter() - t0
    import pikepdf

    with pikepdf.open(out) as doc:
        pages = len(doc.pages)
    return {"seconds": round(seconds, 2), "pages": pages, **_peak()}


def phase_export(home: Path, out: Path, use_cache: bool) -> dict[str, object]:
    from evidence.config import load_config
    from evidence.render.dossier import export_dossier
    from evidence.store.db import open_store

    os.environ["EVIDENCE_HOME"] = str(home)
    store = open_store(load_config())
    t0 = time.perf_counter()
    result = export_dossier(store, customer_ref="1", output=out, use_cache=use_cache)
    seconds = time.perf_counter() - t0
    peak = _peak()
    # The render workers are children of the fork server, not of this process: they
    # report their own peak.
    peak["worker_rss_mb"] = max(peak["worker_rss_mb"], result.worker_rss_mb)
    peak["cpu_s"] = round(peak["cpu_s"] + result.worker_cpu_s, 1)
    return {
        "seconds": round(seconds, 2),
        "pages": result.pages,
        "parts_rendered": result.parts_rendered,
        "parts_cached": result.parts_cached,
        **peak,
    }


def phase_add_one(home: Path) -> dict[str, object]:
    from evidence.config import load_config
    from evidence.ingest.mail import import_mail
    from evidence.store.db import open_store

    os.environ["EVIDENCE_HOME"] = str(home)
    new = home / "one-more"
    new.mkdir(exist_ok=True)
    (new / "x.eml").write_text(
        "Received: by mx.bench.example; Fri, 01 Jan 2027 08:00:00 +0000\n"
        "From: asiakas@example.net\nSubject: vielä yksi\n\nKiitos.\n",
        encoding="utf-8",
    )
    import_mail(open_store(load_config()), [new])
    return {}


def _run_phase(*args: str) -> dict[str, object]:
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    # The machine's 1-minute load average before and after: timings on a shared
    # machine mean little without it (peak RSS does not depend on it).
    result["load"] = f"{load:.1f}-{os.getloadavg()[0]:.1f}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive render")
    parser.add_argument(
        "--whole-baseline",
        action="store_true",
        help="also render the whole dossier (front matter, index, exhibits, list of files) "
        "in one write_pdf",
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="build the store once in this folder and measure on a copy of it",
    )
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, home, *rest = args.phase
        if name == "build":
            build_store(Path(home), int(rest[0]))
            print("{}")
        elif name == "baseline":
            print(json.dumps(phase_baseline(Path(home), Path(rest[0]))))
        elif name == "whole":
            print(json.dumps(phase_whole(Path(home), Path(rest[0]))))
        elif name == "export":
            print(json.dumps(phase_export(Path(home), Path(rest[0]), rest[1] == "cache")))
        elif name == "add":
            print(json.dumps(phase_add_one(Path(home))))
        return
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as tmp:
        home = Path(tmp) / "home"
        kept = args.store / f"home-{args.items}" if args.store else None
        if kept is not None and (kept / "evidence.db").is_file():
            shutil.copytree(kept, home)
            print(f"store of {args.items:,} items copied from {kept}")
        else:
            home.mkdir()
            t0 = time.perf_counter()
            _run_phase("build", str(home), str(args.items))
            print(f"store of {args.items:,} items built in {time.perf_counter() - t0:.1f} s")
            if kept is not None:
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(home, kept)
        rows = []
        if not args.no_baseline:
            rows.append(
                ("baseline (one write_pdf)", _run_phase("baseline", str(home), f"{tmp}/b.pdf"))
            )
        if args.whole_baseline:
            rows.append(
                ("whole dossier, one write_pdf", _run_phase("whole", str(home), f"{tmp}/h.pdf"))
            )
        rows.append(
            ("export, cold cache", _run_phase("export", str(home), f"{tmp}/c.pdf", "cache"))
        )
        rows.append(
            ("export, warm, no change", _run_phase("export", str(home), f"{tmp}/w.pdf", "cache"))
        )
        _run_phase("add", str(home))
        rows.append(
            ("export, warm + 1 item", _run_phase("export", str(home), f"{tmp}/w1.pdf", "cache"))
        )
        print(
            f"{'run':<28}{'seconds':>9}{'CPU s':>8}{'pages':>7}{'RSS MB':>9}{'workers MB':>12}"
            f"{'load':>12}"
        )
        for label, row in rows:
            print(
                f"{label:<28}{row['seconds']:>9}{row['cpu_s']:>8}{row['pages']:>7}{row['rss_mb']:>9}"
                f"{row['worker_rss_mb']:>12}{row['load']:>12}"
            )
        by_label = dict(rows)
        cold = by_label["export, cold cache"]
        for label in ("baseline (one write_pdf)", "whole dossier, one write_pdf"):
            if label in by_label:
                base = by_label[label]
                print(
                    f"cold export vs {label}: "
                    f"{float(base['seconds']) / float(cold['seconds']):.2f}x"
                )
        cold, warm1 = rows[-3][1], rows[-1][1]
        print(f"warm+1 vs cold: {float(cold['seconds']) / float(warm1['seconds']):.1f}x faster")


if __name__ == "__main__":
    main()
