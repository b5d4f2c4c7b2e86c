"""Who may read a document (`Access`) and who will read an answer (`Audience`), in one vocabulary of principals.

A principal is `user:<email>` or `group:<name>`, lower-cased. A document is either visible to everyone who may
use its source, or only to the principals its access names. Every chunk carries its document's readers in the
payload field `readers` (`EVERYONE` for the first case); the store filters on it inside the query, so a restricted
chunk is never a candidate for an audience it does not name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EVERYONE = "*"  # the `readers` value of a document visible to everyone who may use its source
# The `readers` value of a document restricted to nobody (e.g. a child whose restrictions and its parent's share no
# one). Never an empty list: the store treats an empty `readers` like a point from before permissions (public).
NOBODY = "!nobody"
READERS_FIELD = "readers"
USER_PREFIX = "user:"
GROUP_PREFIX = "group:"


def principal(kind: str, name: str) -> str:
    """`user:<email>` or `group:<name>`, normalised so that the same person always compares equal."""
    if kind not in ("user", "group"):
        raise ValueError(f"a principal is a user or a group, not {kind!r}")
    name = name.strip().lower()
    if not name:
        raise ValueError("a principal needs a name")
    return f"{kind}:{name}"


def user(email: str) -> str:
    return principal("user", email)


def group(name: str) -> str:
    return principal("group", name)


def parse_principal(text: str) -> str:
    """A principal from settings text (`user:a@x.com`, `group:eng`, or a bare email); ValueError otherwise."""
    text = text.strip()
    kind, sep, name = text.partition(":")
    if sep and kind.lower() in ("user", "group"):
        return principal(kind.lower(), name)
    if "@" in text and not sep:
        return user(text)
    raise ValueError(f"{text!r} is not a principal: write user:<email> or group:<name>")


@dataclass(frozen=True, slots=True)
class Access:
    """Who may read a document: everyone who may use its source (`principals` None), or the principals named.

    An empty set of principals means nobody but the operator at the terminal.
    """

    principals: frozenset[str] | None = None

    @classmethod
    def everyone(cls) -> Access:
        return cls(None)

    @classmethod
    def only(cls, principals: Iterable[str]) -> Access:
        return cls(frozenset(principals))

    @property
    def public(self) -> bool:
        return self.principals is None

    def readers(self) -> list[str]:
        """The payload value stored on every chunk of the document."""
        if self.principals is None:
            return [EVERYONE]
        return sorted(self.principals) or [NOBODY]

    def narrowed_by(self, other: Access) -> Access:
        """Visible only to those both accesses allow (a restricted parent narrows its child)."""
        if other.principals is None:
            return self
        if self.principals is None:
            return other
        return Access(self.principals & other.principals)

    @classmethod
    def from_readers(cls, readers: Sequence[str] | None) -> Access:
        """Back from a payload; a point written before permissions existed (no field) is visible to everyone."""
        if not readers or EVERYONE in readers:
            return cls(None)
        return cls(frozenset(readers) - {NOBODY})


PUBLIC = Access.everyone()


@dataclass(frozen=True, slots=True)
class Audience:
    """Who will read an answer: the principals of the asker (or of everyone in a channel), or the operator.

    `Audience.public()` — no known principals — sees only documents visible to everyone. `Audience.operator()`
    (the terminal) sees every document; no chat or API path may build it.
    """

    principals: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def public(cls) -> Audience:
        return cls()

    @classmethod
    def operator(cls) -> Audience:
        return cls(frozenset(), everything=True)

    @classmethod
    def of(cls, principals: Iterable[str]) -> Audience:
        return cls(frozenset(principals))

    def reader_values(self) -> list[str] | None:
        """The `readers` values a chunk may carry to be shown to this audience; None: no restriction."""
        if self.everything:
            return None
        return [EVERYONE, *sorted(self.principals)]

    def may_read(self, readers: Sequence[str] | None) -> bool:
        """Whether a document with these payload readers may be shown to this audience."""
        if self.everything or not readers or EVERYONE in readers:
            return True
        return not self.principals.isdisjoint(readers)

    def key(self) -> str:
        """A stable text for cache keys: answers for different audiences are never shared."""
        return "*operator*" if self.everything else ",".join(sorted(self.principals))


__all__ = [
    "EVERYONE",
    "NOBODY",
    "PUBLIC",
    "READERS_FIELD",
    "Access",
    "Audience",
    "group",
    "parse_principal",
    "principal",
    "user",
]
