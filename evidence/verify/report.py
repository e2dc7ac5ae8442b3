"""What a verification found: each failure names the thing that fails and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    subject: str  # e.g. "blob 3a4f…", "incidents/1", "ledger entry #5", "checkpoint #2"
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "problem": self.problem}


@dataclass
class Report:
    """The outcome of ``evidence verify``: intact only when nothing failed."""

    what: str  # "store" or "dossier"
    target: str  # the database URL (without password) or the PDF's path
    checks: list[str] = field(default_factory=list)  # one line per check that passed
    failures: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts that are not failures
    facts: dict[str, Any] = field(default_factory=dict)
    # Checks this run left out on purpose (``evidence status``), each saying who runs it.
    not_checked: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.failures

    def fail(self, subject: str, problem: str) -> None:
        self.failures.append(Finding(subject, problem))

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "target": self.target,
            "intact": self.intact,
            "failures": [f.as_dict() for f in self.failures],
            "checks": self.checks,
            "notes": self.notes,
            **({"not_checked": self.not_checked} if self.not_checked else {}),
            **self.facts,
        }

    def lines(self) -> list[str]:
        out = [f"{self.what}: {self.target}"]
        out += [f"  ok    {line}" for line in self.checks]
        out += [f"  note  {line}" for line in self.notes]
        out += [f"  not checked  {line}" for line in self.not_checked]
        out += [f"  FAIL  {f.subject}: {f.problem}" for f in self.failures]
        if self.intact and self.not_checked:
            out.append("INTACT as far as checked: every check above passed")
        elif self.intact:
            out.append("INTACT: every check passed")
        else:
            n = len(self.failures)
            out.append(f"NOT INTACT: {n} problem{'s' if n != 1 else ''} found")
        return out
