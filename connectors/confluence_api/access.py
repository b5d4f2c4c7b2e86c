"""Who may read a Confluence page: the read restrictions of the page and of its ancestors when any has some
(intersected: a restricted page restricts the pages under it), else its space's read permission.

(Confluence asks for both; one flat set of principals cannot say "in group eng AND named here", and the people a
page is restricted to can nearly always read its space, so the more specific list is the one kept. Likewise a
page restricted to people under one restricted to a group is left to the people named in both: fewer, never more.)

Users become `user:<email>` (Cloud gives emails when the profile allows; a user without one is left out, so the
page stays visible to fewer people, never more); groups become `group:<name>`. A space readable anonymously, or
one whose permissions the credential cannot see, is visible to everyone who may use the source.
"""

from __future__ import annotations

from typing import Any

from rag_core.permissions import PUBLIC, Access, group, user


def _principals(subjects: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for person in (subjects.get("user") or {}).get("results") or []:
        email = person.get("email") or person.get("emailAddress")
        if email:
            found.add(user(email))
    for team in (subjects.get("group") or {}).get("results") or []:
        if team.get("name"):
            found.add(group(team["name"]))
    return found


def space_access(space: dict[str, Any]) -> Access:
    """From `GET /rest/api/space/{key}?expand=permissions`: who holds the space's read permission."""
    permissions = space.get("permissions")
    if not permissions:
        return PUBLIC  # not visible to this credential (or none listed): the source's own audience applies
    principals: set[str] = set()
    for permission in permissions:
        operation = permission.get("operation") or {}
        if operation.get("operation") != "read" or operation.get("targetType") != "space":
            continue
        if permission.get("anonymousAccess"):
            return PUBLIC
        principals |= _principals(permission.get("subjects") or {})
    return Access.only(principals) if principals else PUBLIC


def own_restriction(content: dict[str, Any]) -> Access | None:
    """A page's own read restrictions (`restrictions.read.restrictions.*` expanded); None when it has none."""
    read = ((content.get("restrictions") or {}).get("read") or {}).get("restrictions") or {}
    users = (read.get("user") or {}).get("results") or []
    groups = (read.get("group") or {}).get("results") or []
    return Access.only(_principals(read)) if users or groups else None


def page_access(content: dict[str, Any], space: Access) -> Access:
    """Who both the page's read restrictions and those of each of its ancestors (`ancestors` expanded with
    theirs) allow, as Confluence applies them; the space's access when none has any."""
    access: Access | None = None
    for item in [content, *(content.get("ancestors") or [])]:
        own = own_restriction(item)
        if own is not None:
            access = own if access is None else access.narrowed_by(own)
    return space if access is None else access
