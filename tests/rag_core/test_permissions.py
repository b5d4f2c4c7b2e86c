"""The permission vocabulary's edge: a document restricted to nobody must never read as public."""

from __future__ import annotations

from rag_core.permissions import NOBODY, Access, Audience


def test_a_document_restricted_to_nobody_is_readable_by_no_audience_but_the_operator() -> None:
    nobody = Access.only({"user:a@x.com"}).narrowed_by(Access.only({"group:legal"}))
    assert nobody.principals == frozenset() and not nobody.public
    # Never an empty list: the store reads an empty `readers` as a point from before permissions (public).
    assert nobody.readers() == [NOBODY]
    assert Access.from_readers(nobody.readers()) == nobody
    for audience in (Audience.public(), Audience.of({"user:a@x.com", "group:legal", NOBODY[1:]})):
        assert not audience.may_read(nobody.readers())
    assert Audience.operator().may_read(nobody.readers())
