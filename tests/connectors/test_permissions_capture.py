"""Who may read each document, as the exports say it: Confluence XML restrictions and space permissions, Drive's
sidecar `permissions`, and the per-source `visible_to` where an export says nothing (docs/permissions.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.registry import make_reader
from rag_core.permissions import PUBLIC, Access
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document
from tests.connectors import exports

CEO = "user:ceo@acme.test"
BOB = "user:bob@acme.test"


def read(settings: Settings, path: Path, kind: str = "confluence", **config) -> dict[str, Document]:
    reader = make_reader(SourceConfig(name="src", kind=kind, path=path, **config), settings)
    return {i.id: i for i in reader.read() if isinstance(i, Document)}


def space() -> exports.XmlSpace:
    return (
        exports.XmlSpace()
        .user("8a7f0001", "ceo", "CEO@acme.test")
        .user("8a7f0002", "bob", "bob@acme.test")
        .user("8a7f0003", "noemail")
        .page("3001", "Operations Home", "<p>Start here for operations.</p>")
    )


def test_a_view_restriction_names_users_by_email_and_groups(settings: Settings, tmp_path: Path) -> None:
    export = (
        space()
        .page("3002", "Acquisition", "<p>The acquisition codename is Nightingale.</p>", parent="3001")
        .restrict("3002", users=("8a7f0001",), groups=("Legal",))
        .page("3003", "Runbook", "<p>Restart the service.</p>", parent="3001")
        .write(tmp_path / "export")
    )
    docs = read(settings, export)
    assert docs["3002"].access == Access.only(
        {CEO, "group:legal"}
    )  # lower-cased, email through the user object
    assert docs["3003"].access == PUBLIC and docs["3001"].access == PUBLIC
    assert docs["3002"].access.readers() == ["group:legal", CEO]


def test_a_restriction_on_an_ancestor_restricts_descendants_by_intersection(
    settings: Settings, tmp_path: Path
) -> None:
    export = (
        space()
        .page("3002", "Deals", "<p>Deals in progress.</p>", parent="3001")
        .restrict("3002", users=("8a7f0001", "8a7f0002"), groups=("legal",))
        .page("3003", "Deal A", "<p>Deal A terms.</p>", parent="3002")  # no own restriction: the parent's
        .page("3004", "Deal B", "<p>Deal B terms.</p>", parent="3003")
        .restrict("3004", users=("8a7f0002",), groups=("finance",))  # both must allow: only bob
        .page("3005", "Deal C", "<p>Deal C terms.</p>", parent="3002")
        .restrict("3005", groups=("finance",))  # disjoint from the parent's: nobody but the operator
    ).write(tmp_path / "export")
    docs = read(settings, export)
    assert docs["3003"].access == Access.only({CEO, BOB, "group:legal"})
    assert docs["3004"].access == Access.only({BOB})
    assert docs["3005"].access == Access.only(set())
    assert docs["3001"].access == PUBLIC


def test_edit_restrictions_empty_sets_legacy_user_names_and_damaged_rows(
    settings: Settings, tmp_path: Path
) -> None:
    export = (
        space()
        .page("3002", "Edit-restricted", "<p>Anyone may read this.</p>", parent="3001")
        .restrict("3002", users=("8a7f0002",), kind="Edit")  # restricts editing, not viewing
        .page("3003", "Empty set", "<p>An emptied restriction.</p>", parent="3001")
        .restrict("3003")  # a View set with no rows restricts nothing
        .page("3004", "Old export", "<p>Named by user name.</p>", parent="3001")
        .restrict("3004", user_names=("bob", "ghost"))  # before user keys; ghost is not in the export
        .page("3005", "No email", "<p>Only a user without an email.</p>", parent="3001")
        .restrict("3005", users=("8a7f0003", "deadbeef"))  # no email; an unknown key
        .page("3006", "Damaged", "<p>A row naming neither a user nor a group.</p>", parent="3001")
        .restrict("3006", groups=("",))
    ).write(tmp_path / "export")
    docs = read(settings, export)
    assert docs["3002"].access == PUBLIC
    assert docs["3003"].access == PUBLIC
    assert docs["3004"].access == Access.only({BOB, "user:ghost"})
    # Principals that match no asker's email: the page fails closed rather than open.
    assert docs["3005"].access == Access.only({"user:noemail", "user:deadbeef"})
    assert docs["3006"].access == Access.only(set())  # a restriction ragbot cannot read hides the page


def test_space_view_permissions_set_the_audience_of_unrestricted_pages(
    settings: Settings, tmp_path: Path
) -> None:
    export = (
        space()
        .space_permission(group="confluence-users")
        .space_permission(user_key="8a7f0001")
        .space_permission(kind="EDITSPACE", group="editors")  # not a view permission
        .page("3002", "Acquisition", "<p>Codename Nightingale.</p>", parent="3001")
        .restrict("3002", users=("8a7f0002",))
    ).write(tmp_path / "export")
    docs = read(settings, export)
    assert docs["3001"].access == Access.only({"group:confluence-users", CEO})
    assert docs["3002"].access == Access.only({BOB})  # the page's own restriction decides
    # visible_to overrides the space permissions (restrictions still hold); ["*"] means everyone.
    assert read(settings, export, visible_to=["group:staff"])["3001"].access == Access.only({"group:staff"})
    assert read(settings, export, visible_to=["*"])["3001"].access == PUBLIC
    assert read(settings, export, visible_to=["*"])["3002"].access == Access.only({BOB})


def test_anonymous_space_access_means_everyone(settings: Settings, tmp_path: Path) -> None:
    export = space().space_permission(group="confluence-users").space_permission().write(tmp_path / "export")
    assert read(settings, export)["3001"].access == PUBLIC


def test_html_export_pages_and_attachments_take_visible_to(settings: Settings, tmp_path: Path) -> None:
    sample = exports.copy_sample("confluence-eng", tmp_path)
    everyone = read(settings, sample)
    assert everyone and all(d.access == PUBLIC for d in everyone.values())
    docs = read(settings, sample, visible_to=["group:Eng", "ada@acme.test"])
    attachments = [d for d in docs.values() if "/" in d.id]
    assert attachments, "the sample space has an attachment"
    assert all(d.access == Access.only({"group:eng", "user:ada@acme.test"}) for d in docs.values())


def _drive(tmp_path: Path, files: dict[str, dict | None]) -> Path:
    root = tmp_path / "drive"
    root.mkdir()
    for name, meta in files.items():
        (root / name).write_text(f"# {name}\n\nThe text of {name}.")
        if meta is not None:
            (root / f"{name}.json").write_text(json.dumps(meta))
    return root


def test_drive_sidecar_permissions_are_honoured(settings: Settings, tmp_path: Path) -> None:
    root = _drive(
        tmp_path,
        {
            "shared.md": {
                "id": "s1",
                "permissions": [
                    {"type": "user", "role": "owner", "emailAddress": "CEO@acme.test"},
                    {"type": "group", "role": "reader", "emailAddress": "legal@acme.test"},
                    {"type": "user", "role": "commenter", "emailAddress": "gone@acme.test", "deleted": True},
                ],
            },
            "anyone.md": {"id": "s2", "permissions": [{"type": "anyone", "role": "reader"}]},
            "domain.md": {
                "id": "s3",
                "permissions": [
                    {"type": "user", "role": "owner", "emailAddress": "ceo@acme.test"},
                    {"type": "domain", "role": "reader", "domain": "acme.test"},
                ],
            },
            "unreadable.md": {"id": "s4", "permissions": [{"type": "mystery"}]},
            "nometa.md": None,
            "noperms.md": {"id": "s6"},
        },
    )
    docs = read(settings, root, kind="drive")
    assert docs["drive:s1"].access == Access.only({CEO, "group:legal@acme.test"})
    assert docs["drive:s2"].access == PUBLIC
    assert docs["drive:s3"].access == PUBLIC  # a domain grant: everyone who may use the source
    assert docs["drive:s4"].access == Access.only(set())  # names nobody readable: fails closed
    assert docs["nometa.md"].access == PUBLIC and docs["drive:s6"].access == PUBLIC
    scoped = read(settings, root, kind="drive", visible_to=["group:staff"])
    assert scoped["drive:s3"].access == Access.only({"group:staff"})  # "everyone" is the source's audience
    assert scoped["nometa.md"].access == Access.only({"group:staff"})
    assert scoped["drive:s1"].access == Access.only({CEO, "group:legal@acme.test"})


def test_visible_to_is_validated_and_normalised() -> None:
    config = SourceConfig(name="s", kind="drive", path=Path("."), visible_to=["Ada@Acme.test", "group:Eng"])
    assert config.visible_to == ["group:eng", "user:ada@acme.test"]
    assert SourceConfig(
        name="s", kind="drive", path=Path("."), visible_to=[]
    ).audience_access() == Access.only(set())
    assert SourceConfig(name="s", kind="drive", path=Path(".")).audience_access() is None
    for bad in (["eng"], ["team:eng"], ["*", "group:eng"], ["group:"]):
        with pytest.raises(ValidationError):
            SourceConfig(name="s", kind="drive", path=Path("."), visible_to=bad)
