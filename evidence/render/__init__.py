"""Rendering: the dossier PDF (templates + WeasyPrint + pikepdf) and plain-text listings."""
