"""Restricted pages for the permission tests of the chat and API paths, and questions generated from them.

The small engine's five documents (all visible to everyone) plus two restricted pages in public sources, so only
the document-level permissions stand between a question and the page: "Project Falcon" is for Alice alone,
"Litigation hold" for the group `legal`, "Board minutes" for nobody (only the terminal's operator).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

from rag_core.permissions import Access, group, user

ALICE = user("alice@example.com")
LEGAL = group("legal")

FALCON_ID = "falcon"
FALCON_TEXT = (
    "# Acquisition\n"
    "The acquisition codename is Bluebird. The board approved buying Northwind Analytics for 40 million "
    "dollars. The deal closes on March 3 after the regulator signs off.\n\n"
    "# Deal team\n"
    "Only the deal team may discuss Bluebird outside this page. Marta Ruiz leads the integration of the "
    "Northwind engineers. The Northwind office in Lisbon keeps its name for one year.\n\n"
    "# Announcement\n"
    "The public announcement of Bluebird is planned for the all-hands meeting in April. Customers of Northwind "
    "keep their contracts unchanged."
)
HOLD_ID = "hold"
HOLD_TEXT = (
    "# Litigation hold\n"
    "The Contoso lawsuit requires preserving every email from 2025. Outside counsel is Baker Finch LLP. "
    "Do not delete the Contoso shared drive until the hold is lifted."
)
MINUTES_ID = "minutes"  # restricted to nobody: a child whose restriction and its parent's share no one
MINUTES_TEXT = (
    "# Board minutes\n"
    "The acquisition vote was unanimous; the zebra clause caps the earn-out for the deal team at two years."
)
# Words only the restricted pages hold: an answer or source showing one of them leaked.
SECRETS = (
    "bluebird",
    "northwind",
    "marta ruiz",
    "lisbon",
    "contoso",
    "baker finch",
    "project falcon",
    "zebra clause",
)
RESTRICTED_IDS = {FALCON_ID, HOLD_ID, MINUTES_ID}


def restricted_documents() -> list[Any]:
    from rag_core.types import Document

    return [
        Document(
            id=FALCON_ID,
            source="eng-wiki",
            title="Project Falcon",
            text=FALCON_TEXT,
            url="https://wiki.example.com/falcon",
            access=Access.only({ALICE}),
        ),
        Document(
            id=HOLD_ID,
            source="people-drive",
            title="Litigation hold",
            text=HOLD_TEXT,
            url="https://drive.example.com/hold",
            access=Access.only({LEGAL}),
        ),
        Document(
            id=MINUTES_ID,
            source="eng-wiki",
            title="Board minutes",
            text=MINUTES_TEXT,
            url="https://wiki.example.com/minutes",
            access=Access.only({ALICE}).narrowed_by(Access.only({LEGAL})),  # nobody
        ),
    ]


def leaks(text: str, citations: Iterable[Any] = ()) -> list[str]:
    """What of the restricted pages a reply shows: secret words in its text, restricted documents it cites."""
    found = [s for s in SECRETS if s in text.lower()]
    for c in citations:
        doc_id = getattr(c, "doc_id", None) or (c.get("doc_id") if isinstance(c, dict) else None)
        title = getattr(c, "title", None) or (c.get("title") if isinstance(c, dict) else "")
        snippet = getattr(c, "snippet", None) or (c.get("snippet") if isinstance(c, dict) else "")
        if doc_id in RESTRICTED_IDS:
            found.append(f"cites {doc_id}")
        found += [s for s in SECRETS if s in f"{title} {snippet}".lower()]
    return found


_STOP = set(
    [
        "the",
        "a",
        "an",
        "of",
        "is",
        "for",
        "on",
        "in",
        "to",
        "after",
        "this",
        "may",
        "its",
        "their",
        "keep",
        "one",
        "and",
        "only",
        "until",
        "do",
        "not",
        "from",
        "every",
        "be",
    ]
)
_TEMPLATES = (
    "{sentence}?",
    "What does the wiki say about {phrase}?",
    "Tell me about {phrase}",
    "Is it true that {lower}?",
    "Who knows about {phrase}?",
    "When is {phrase} happening?",
    "{phrase}",
    "Can you explain {phrase}?",
)


def generated_questions(text: str = FALCON_TEXT, n: int = 200) -> list[str]:
    """`n` distinct questions built from the page's sentences: each sentence as a question, and its two- and
    three-word content phrases in question templates (deterministic)."""
    sentences = [
        s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip() and not s.startswith("#")
    ]
    pools: list[list[str]] = []
    for sentence in sentences:
        bare = sentence.rstrip(".")
        words = [w for w in re.findall(r"[A-Za-z0-9]+", bare) if w.lower() not in _STOP]
        phrases = [" ".join(words[i : i + size]) for size in (3, 2) for i in range(len(words) - size + 1)]
        pool = [
            t.format(sentence=bare, lower=bare[0].lower() + bare[1:], phrase=phrases[0])
            for t in _TEMPLATES[:4]
        ]
        pool += [t.format(sentence=bare, lower=bare, phrase=p) for p in phrases for t in _TEMPLATES[1:]]
        pools.append(pool)
    questions: list[str] = []
    for q in itertools.chain.from_iterable(itertools.zip_longest(*pools)):
        if q is not None and q not in questions:
            questions.append(q)
        if len(questions) == n:
            return questions
    raise AssertionError(f"only {len(questions)} questions could be generated")
