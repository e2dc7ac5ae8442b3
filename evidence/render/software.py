"""The software that decides a dossier's bytes: named at the end of the dossier and in
its manifest.json, and part of the key of every cached page.

Read without importing WeasyPrint (the exporting process never lays out a page, and the
import costs it a second and tens of MB): the Python packages' versions from their
metadata, Pango's and HarfBuzz's from the shared libraries that WeasyPrint loads, by the
names it loads them by.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import re
import sys
import zlib
from dataclasses import dataclass

from evidence import __version__


@dataclass(frozen=True)
class Component:
    name: str
    version: str


# The Python packages named in the dossier: (name as its authors write it, distribution).
PACKAGES = (
    ("WeasyPrint", "weasyprint"),  # lays out the pages
    ("pydyf", "pydyf"),  # writes WeasyPrint's PDFs
    ("fontTools", "fonttools"),  # reads the fonts WeasyPrint embeds
    ("pikepdf", "pikepdf"),  # reads the parts and appended PDFs for the assembler
)
# The C libraries WeasyPrint lays out text with: the file names it tries (Linux, macOS,
# Windows), and the function that tells the version.
LIBRARIES = (
    (
        "Pango",
        ("libpango-1.0.so.0", "libpango-1.0.dylib", "libpango-1.0-0.dll"),
        "pango_version_string",
    ),
    (
        "HarfBuzz",  # shapes the text and subsets the embedded fonts
        ("libharfbuzz.so.0", "libharfbuzz.0.dylib", "libharfbuzz-0.dll"),
        "hb_version_string",
    ),
)
UNKNOWN = "?"


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def _library_version(names: tuple[str, ...], function: str) -> str:
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = getattr(library, function)
        version.restype = ctypes.c_char_p
        version.argtypes = []
        found = version()
        return found.decode("ascii") if found else UNKNOWN
    return UNKNOWN


@functools.cache
def dossier_software() -> tuple[Component, ...]:
    """Every program and library whose version decides the dossier's bytes, with it:
    evidence, the renderer's packages and libraries, qpdf (under pikepdf), Python and
    zlib (which compresses the assembled dossier)."""
    # Imported here: the render workers' fork server imports this module, and needs no
    # pikepdf in every worker's address space.
    import pikepdf

    return (
        Component("evidence", __version__),
        *(Component(name, _package_version(dist)) for name, dist in PACKAGES),
        Component("libqpdf", str(pikepdf.__libqpdf_version__)),
        *(Component(name, _library_version(files, fn)) for name, files, fn in LIBRARIES),
        Component("Python", ".".join(str(n) for n in sys.version_info[:3])),
        Component("zlib", zlib.ZLIB_RUNTIME_VERSION),
    )


@functools.cache
def render_fingerprint() -> str:
    """A digest of the versions a rendered page's bytes depend on: the dossier's software
    and every package WeasyPrint requires (tinycss2, Pillow, Pyphen, ...). A cached page
    made by other versions is never used."""
    names = {dist for _name, dist in PACKAGES}
    for requirement in importlib.metadata.requires("weasyprint") or []:
        if "extra ==" not in requirement:
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            if match:
                names.add(match.group(0).lower())
    versions = [f"{c.name} {c.version}" for c in dossier_software()]
    versions += [f"{name} {_package_version(name)}" for name in sorted(names)]
    return hashlib.sha256("\n".join(versions).encode("utf-8")).hexdigest()
