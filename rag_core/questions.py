"""One wording-insensitive form of a question: the answer cache's key and the report's grouping of gaps."""

from __future__ import annotations

import re


def normalise_question(text: str) -> str:
    """Wording-insensitive key: no mentions, case, punctuation at the ends or repeated spaces."""
    text = re.sub(r"<[@#!][^>]*>", " ", text)
    return re.sub(r"\s+", " ", text).strip().strip("?!.,;: ").lower()
