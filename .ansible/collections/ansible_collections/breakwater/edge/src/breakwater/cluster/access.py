"""The edge's own etcd user: a role with read-only permission on exactly what the
watcher reads (cluster.keys.read_resources), bound to the user its client
certificate names (etcd takes a client certificate's CN as the user name).

Used by the module ``breakwater.edge.etcd_access``, with an etcd account allowed to
manage users (``root``).  Idempotent; in check mode it only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from breakwater.cluster.source import EtcdSource, NotFound, key_range

# etcd's authpb.Permission.Type
_TYPES = {0: "read", 1: "write", 2: "readwrite"}
READ = 0


@dataclass(frozen=True, order=True)
class Grant:
    """One key-range permission: [key, range_end)."""

    kind: str  # read | write | readwrite
    key: str
    range_end: str

    def describe(self) -> str:
        if self.range_end == key_range(self.key, prefix=True)[1].decode(errors="replace"):
            return f"{self.kind} {self.key}*"
        return f"{self.kind} {self.key}" + (f" .. {self.range_end}" if self.range_end else "")


@dataclass
class Access:
    """What etcd holds for the edge: the user's roles and the role's permissions."""

    user_exists: bool = False
    user_roles: list[str] = field(default_factory=list)
    role_exists: bool = False
    grants: list[Grant] = field(default_factory=list)

    def as_dict(self, user: str, role: str) -> dict[str, Any]:
        return {
            "user": user if self.user_exists else None,
            "user_roles": sorted(self.user_roles),
            "role": role if self.role_exists else None,
            "permissions": [grant.describe() for grant in sorted(self.grants)],
        }


def read_grants(prefixes: Sequence[str]) -> list[Grant]:
    """Read-only permission on each prefix and every key under it."""
    grants = set()
    for prefix in prefixes:
        start, end = key_range(prefix, prefix=True)
        grants.add(Grant("read", start.decode(), end.decode()))
    return sorted(grants)


async def current_access(source: EtcdSource, user: str, role: str) -> Access:
    client = await source.connect()
    access = Access()
    try:
        answer = await client.auth("UserGet", f"read user {user}", name=user)
        access.user_exists, access.user_roles = True, list(answer.roles)
    except NotFound:
        pass
    try:
        answer = await client.auth("RoleGet", f"read role {role}", role=role)
        access.role_exists = True
        access.grants = sorted(
            Grant(
                _TYPES.get(p.permType, str(p.permType)),
                p.key.decode(errors="replace"),
                p.range_end.decode(errors="replace"),
            )
            for p in answer.perm
        )
    except NotFound:
        pass
    return access


async def ensure_access(
    source: EtcdSource,
    user: str,
    role: str,
    prefixes: Sequence[str] | None,
    check_mode: bool = False,
) -> tuple[Access, Access]:
    """Make etcd hold exactly: ``role`` with read permission on ``prefixes`` (nothing
    else) and ``user`` (no password: it logs in with its certificate) with ``role`` as
    its only role.  ``prefixes`` None: remove both.  (before, after)."""
    before = await current_access(source, user, role)
    after = Access() if prefixes is None else Access(True, [role], True, read_grants(prefixes))
    if check_mode or after == before:
        return before, after
    client = await source.connect()
    if prefixes is None:
        if before.user_exists:
            await client.auth("UserDelete", f"delete user {user}", name=user)
        if before.role_exists:
            await client.auth("RoleDelete", f"delete role {role}", role=role)
        return before, after
    if not before.role_exists:
        await client.auth("RoleAdd", f"add role {role}", name=role)
    wanted = set(after.grants)
    for grant in sorted(set(before.grants) - wanted):
        await client.auth(
            "RoleRevokePermission",
            f"revoke {grant.describe()} from role {role}",
            role=role,
            key=grant.key.encode(),
            range_end=grant.range_end.encode(),
        )
    for grant in sorted(wanted - set(before.grants)):
        permission = {
            "permType": READ,
            "key": grant.key.encode(),
            "range_end": grant.range_end.encode(),
        }
        await client.auth(
            "RoleGrantPermission",
            f"grant {grant.describe()} to role {role}",
            name=role,
            perm=permission,
        )
    if not before.user_exists:
        await client.auth(
            "UserAdd", f"add user {user}", name=user, password="", options={"no_password": True}
        )
    for other in sorted(set(before.user_roles) - {role}):
        await client.auth(
            "UserRevokeRole", f"revoke role {other} from {user}", name=user, role=other
        )
    if role not in before.user_roles:
        await client.auth("UserGrantRole", f"grant role {role} to {user}", user=user, role=role)
    return before, after
