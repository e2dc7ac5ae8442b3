"""PDFs appended to the dossier as they came (a customer's attachment, an authority's
letter) are shown, never run.

Such a PDF may be hostile: its pages and annotations can carry JavaScript, launch a
program, open a tracker's URL or play media. Before a page of it is copied, it is made
inert here. Its content stream is not touched, and its original is embedded unchanged.
"""

from __future__ import annotations

import pikepdf
from pikepdf import Array, Dictionary

# Annotations PDF/A-3 does not allow (they play media or show 3D models).
MEDIA_ANNOTATIONS = {"/3D", "/Sound", "/Screen", "/Movie", "/RichMedia"}
# The named actions PDF/A-3 allows.
NAMED_ACTIONS = {"/NextPage", "/PrevPage", "/FirstPage", "/LastPage"}


def make_inert(page: pikepdf.Object) -> None:
    """An appended PDF's page and annotations lose every action but a jump inside the
    dossier (JavaScript, Launch, URI, SubmitForm, ... are not allowed in PDF/A-3b either,
    and a web link in an email is not kept), and media annotations go."""
    if "/AA" in page:
        del page["/AA"]
    annots = page.get("/Annots")
    if not isinstance(annots, Array):
        return
    kept: list[pikepdf.Object] = []
    for annot in annots:
        if not isinstance(annot, Dictionary) or str(annot.get("/Subtype")) in MEDIA_ANNOTATIONS:
            continue
        if "/AA" in annot:
            del annot["/AA"]
        action = annot.get("/A")
        if isinstance(action, Dictionary) and not _harmless(action):
            del annot["/A"]
        field = annot.get("/Parent")  # a form field's own actions
        while isinstance(field, Dictionary) and "/Kids" in field:
            if "/AA" in field:
                del field["/AA"]
            field = field.get("/Parent")
        kept.append(annot)
    page.Annots = Array(kept)


def _harmless(action: pikepdf.Object) -> bool:
    kind = str(action.get("/S"))
    if "/Next" in action:
        del action["/Next"]  # what follows a jump may be anything
    return kind == "/GoTo" or (kind == "/Named" and str(action.get("/N")) in NAMED_ACTIONS)
