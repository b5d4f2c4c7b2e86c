"""Google Drive over API v3: `connector.py` lists and polls (files.list, changes.list), `files.py` turns one
file into a `Document` (exports of Google Docs / Sheets / Slides, downloads of the rest, permissions)."""
