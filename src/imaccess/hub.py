"""The connection manager: live connections indexed by connection id and by user id,
and the multi-device policy that decides which older logins a new one replaces.

The policy is a pure function over logins: the location store applies it cluster-wide
(the Redis store runs the same rules in a Lua script), so it does not live in the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .settings import MultiDevicePolicy

__all__ = ["DeviceLogin", "Hub", "HubMember", "logins_to_replace"]


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    conn_id: int
    user_id: int
    device_id: str
    platform: str
    login_time: float


def logins_to_replace(
    policy: MultiDevicePolicy, existing: Iterable[DeviceLogin], new: DeviceLogin
) -> list[DeviceLogin]:
    """The logins that ``new`` replaces under ``policy``.

    The caller serialises claims per user, so ``new`` is always the newest login.
    Under every policy a reconnect of the same device replaces its stale connection
    (the old one may not have timed out yet).
    """
    replaced = []
    for old in existing:
        if old.conn_id == new.conn_id or old.user_id != new.user_id:
            continue
        if (
            (old.device_id and old.device_id == new.device_id)
            or policy is MultiDevicePolicy.SINGLE_DEVICE
            or (
                policy is MultiDevicePolicy.SINGLE_PER_PLATFORM
                and old.platform.lower() == new.platform.lower()
            )
        ):
            replaced.append(old)
    return replaced


class HubMember(Protocol):
    @property
    def conn_id(self) -> int: ...

    @property
    def login(self) -> DeviceLogin | None: ...


M = TypeVar("M", bound=HubMember)


class Hub(Generic[M]):
    """Index of this node's connections. Authenticated ones are also indexed by user."""

    __slots__ = ("_by_id", "_by_user")

    def __init__(self) -> None:
        self._by_id: dict[int, M] = {}
        self._by_user: dict[int, dict[int, M]] = {}

    def add(self, member: M) -> None:
        self._by_id[member.conn_id] = member

    def bind(self, member: M) -> None:
        """Index an authenticated connection under its user."""
        login = member.login
        assert login is not None, "bind() needs an authenticated connection"
        self._by_user.setdefault(login.user_id, {})[member.conn_id] = member

    def remove(self, member: M) -> None:
        self._by_id.pop(member.conn_id, None)
        login = member.login
        if login is not None:
            conns = self._by_user.get(login.user_id)
            if conns is not None:
                conns.pop(member.conn_id, None)
                if not conns:
                    del self._by_user[login.user_id]

    def get(self, conn_id: int) -> M | None:
        return self._by_id.get(conn_id)

    def of_user(self, user_id: int) -> list[M]:
        return list(self._by_user.get(user_id, {}).values())

    def users(self) -> int:
        return len(self._by_user)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[M]:
        return iter(list(self._by_id.values()))
