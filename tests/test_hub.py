"""The multi-device policy (a pure function over logins) and the Hub connection index."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.hub import DeviceLogin, Hub, logins_to_replace
from imaccess.settings import MultiDevicePolicy

SINGLE = MultiDevicePolicy.SINGLE_DEVICE
MULTI = MultiDevicePolicy.MULTI_DEVICE
PER_PLATFORM = MultiDevicePolicy.SINGLE_PER_PLATFORM


def login(
    conn_id: int,
    user_id: int = 1,
    device_id: str = "",
    platform: str = "ios",
    login_time: float = 0.0,
) -> DeviceLogin:
    return DeviceLogin(conn_id, user_id, device_id or f"dev-{conn_id}", platform, login_time)


def conn_ids(logins: list[DeviceLogin]) -> set[int]:
    return {x.conn_id for x in logins}


# ----------------------------------------------------------------- logins_to_replace


def test_single_device_replaces_every_older_login_of_the_user() -> None:
    existing = [
        login(1, platform="ios", login_time=1),
        login(2, platform="android", login_time=2),
        login(3, platform="web", login_time=3),
    ]
    new = login(10, platform="desktop", login_time=5)
    assert conn_ids(logins_to_replace(SINGLE, existing, new)) == {1, 2, 3}


def test_multi_device_replaces_only_the_same_device() -> None:
    existing = [
        login(1, device_id="phone", platform="ios", login_time=1),
        login(2, device_id="tablet", platform="ios", login_time=2),
        login(3, device_id="laptop", platform="web", login_time=3),
    ]
    new = login(10, device_id="phone", platform="ios", login_time=5)
    assert logins_to_replace(MULTI, existing, new) == [existing[0]]


def test_multi_device_with_a_new_device_replaces_nothing() -> None:
    existing = [login(1, device_id="phone"), login(2, device_id="tablet")]
    new = login(10, device_id="watch", login_time=5)
    assert logins_to_replace(MULTI, existing, new) == []


def test_empty_device_ids_never_count_as_the_same_device() -> None:
    existing = [DeviceLogin(1, 1, "", "ios", 1.0)]
    new = DeviceLogin(10, 1, "", "android", 5.0)
    assert logins_to_replace(MULTI, existing, new) == []


def test_single_per_platform_matches_platform_case_insensitively() -> None:
    existing = [
        login(1, platform="iOS", login_time=1),
        login(2, platform="IOS", login_time=2),
        login(3, platform="android", login_time=3),
        login(4, platform="Web", login_time=4),
    ]
    new = login(10, platform="ios", login_time=5)
    assert conn_ids(logins_to_replace(PER_PLATFORM, existing, new)) == {1, 2}


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
def test_same_device_reconnect_is_replaced_under_every_policy(policy: MultiDevicePolicy) -> None:
    existing = [login(1, device_id="phone", platform="ios", login_time=1)]
    # a different platform string so only the device rule can match
    new = login(10, device_id="phone", platform="android", login_time=2)
    assert logins_to_replace(policy, existing, new) == existing


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
@pytest.mark.parametrize("old_time", [1.0, 5.0, 10.0], ids=["older", "equal", "newer"])
def test_the_claimant_replaces_the_same_device_whatever_the_login_times(
    policy: MultiDevicePolicy, old_time: float
) -> None:
    # claims are serialised, so the claimant is the newest login by definition: a
    # login_time stamped later (clock skew between nodes) does not protect the old one
    old = login(1, device_id="phone", platform="ios", login_time=old_time)
    new = login(2, device_id="phone", platform="ios", login_time=5.0)
    assert logins_to_replace(policy, [old], new) == [old]


def test_single_device_replaces_logins_stamped_after_the_claimant() -> None:
    existing = [
        login(1, platform="ios", login_time=10.0),
        login(2, platform="web", login_time=20.0),
    ]
    new = login(3, platform="android", login_time=1.0)
    assert logins_to_replace(SINGLE, existing, new) == existing


def test_single_per_platform_replaces_logins_stamped_after_the_claimant() -> None:
    existing = [
        login(1, platform="ios", login_time=10.0),
        login(2, platform="android", login_time=10.0),
    ]
    new = login(3, platform="iOS", login_time=1.0)
    assert logins_to_replace(PER_PLATFORM, existing, new) == [existing[0]]


def test_multi_device_keeps_other_devices_stamped_before_or_after() -> None:
    existing = [
        login(1, device_id="tablet", login_time=1.0),
        login(2, device_id="laptop", login_time=10.0),
    ]
    new = login(3, device_id="phone", login_time=5.0)
    assert logins_to_replace(MULTI, existing, new) == []


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
def test_equal_login_time_counts_as_older(policy: MultiDevicePolicy) -> None:
    old = login(1, device_id="phone", login_time=5.0)
    new = login(2, device_id="phone", login_time=5.0)
    assert logins_to_replace(policy, [old], new) == [old]


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
def test_never_replaces_itself(policy: MultiDevicePolicy) -> None:
    new = login(7, device_id="phone", login_time=5.0)
    # the same connection, e.g. already indexed, even with an older recorded time
    stale_self = DeviceLogin(7, 1, "phone", "ios", 1.0)
    assert logins_to_replace(policy, [new, stale_self], new) == []


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
def test_other_users_are_untouched(policy: MultiDevicePolicy) -> None:
    existing = [
        login(1, user_id=2, device_id="phone", platform="ios", login_time=1),
        login(2, user_id=3, device_id="phone", platform="ios", login_time=1),
    ]
    new = login(10, user_id=1, device_id="phone", platform="ios", login_time=5)
    assert logins_to_replace(policy, existing, new) == []


def test_accepts_any_iterable_and_keeps_input_order() -> None:
    existing = [login(3, login_time=1), login(1, login_time=2), login(2, login_time=3)]
    new = login(10, login_time=5)
    assert logins_to_replace(SINGLE, iter(existing), new) == existing


# -------------------------------------------------------------------- property

_logins = st.lists(
    st.tuples(
        st.integers(1, 3),  # user
        st.sampled_from(["", "phone", "tablet", "laptop"]),  # device_id
        st.sampled_from(["ios", "IOS", "iOS", "android", "Android", "web", ""]),  # platform
        st.floats(0, 1000, allow_nan=False),  # time
    ),
    max_size=30,
)


def _apply(policy: MultiDevicePolicy, arrivals: list[DeviceLogin]) -> dict[int, DeviceLogin]:
    """Feed logins one by one; each removes what it replaces, then joins."""
    live: dict[int, DeviceLogin] = {}
    for new in arrivals:
        replaced = logins_to_replace(policy, list(live.values()), new)
        for old in replaced:
            # what is replaced is always a distinct, live login of the same user
            assert old.conn_id in live
            assert old.conn_id != new.conn_id
            assert old.user_id == new.user_id
            del live[old.conn_id]
        live[new.conn_id] = new
        # the claimant is the newest login by definition: it always survives its claim
        assert live[new.conn_id] is new
    return live


def _arrivals(raw: list[tuple[int, str, str, float]], *, in_order: bool) -> list[DeviceLogin]:
    times = sorted(t for *_, t in raw) if in_order else [t for *_, t in raw]
    return [
        DeviceLogin(conn_id, user, device, platform, time)
        for conn_id, ((user, device, platform, _), time) in enumerate(
            zip(raw, times, strict=True), start=1
        )
    ]


@settings(max_examples=100, deadline=None)
@given(_logins)
def test_property_single_device_leaves_one_login_per_user(raw: list) -> None:
    live = _apply(SINGLE, _arrivals(raw, in_order=True))
    per_user = Counter(x.user_id for x in live.values())
    assert all(n == 1 for n in per_user.values())
    # and it is the latest arrival of each user
    last_of = {x.user_id: x.conn_id for x in _arrivals(raw, in_order=True)}
    assert {x.user_id: x.conn_id for x in live.values()} == last_of


@settings(max_examples=100, deadline=None)
@given(_logins)
def test_property_single_per_platform_leaves_one_login_per_platform(raw: list) -> None:
    live = _apply(PER_PLATFORM, _arrivals(raw, in_order=True))
    per_platform = Counter((x.user_id, x.platform.lower()) for x in live.values())
    assert all(n == 1 for n in per_platform.values())


@settings(max_examples=100, deadline=None)
@given(_logins)
def test_property_multi_device_leaves_one_login_per_named_device(raw: list) -> None:
    live = _apply(MULTI, _arrivals(raw, in_order=True))
    named = Counter((x.user_id, x.device_id) for x in live.values() if x.device_id)
    assert all(n == 1 for n in named.values())
    # logins without a device id are never replaced under multi_device
    unnamed = [x for x in _arrivals(raw, in_order=True) if not x.device_id]
    assert all(x.conn_id in live for x in unnamed)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(MultiDevicePolicy)), _logins)
def test_property_claims_in_arrival_order_leave_the_last_claimant_alive(
    policy: MultiDevicePolicy, raw: list
) -> None:
    # login times in no particular order: they play no part
    arrivals = _arrivals(raw, in_order=False)
    live = _apply(policy, arrivals)  # _apply asserts each claimant survives its own claim
    last_of = {x.user_id: x.conn_id for x in arrivals}
    assert set(last_of.values()) <= set(live)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(MultiDevicePolicy)), _logins)
def test_property_login_times_do_not_change_the_outcome(
    policy: MultiDevicePolicy, raw: list
) -> None:
    # the same arrivals (conn ids, devices, platforms), stamped in order or shuffled
    in_order = _apply(policy, _arrivals(raw, in_order=True))
    shuffled = _apply(policy, _arrivals(raw, in_order=False))
    assert set(in_order) == set(shuffled)


# ------------------------------------------------------------------------- Hub


@dataclass
class Member:
    conn_id: int
    login: DeviceLogin | None = None


def authed(conn_id: int, user_id: int) -> Member:
    return Member(conn_id, login(conn_id, user_id=user_id))


def test_hub_add_get_len() -> None:
    hub: Hub[Member] = Hub()
    a, b = Member(1), Member(2)
    hub.add(a)
    hub.add(b)
    assert len(hub) == 2
    assert hub.get(1) is a
    assert hub.get(2) is b
    assert hub.get(3) is None
    # an unauthenticated member is not indexed by user
    assert hub.users() == 0


def test_hub_bind_indexes_by_user() -> None:
    hub: Hub[Member] = Hub()
    a, b, c = authed(1, 100), authed(2, 100), authed(3, 200)
    for m in (a, b, c):
        hub.add(m)
        hub.bind(m)
    assert sorted(m.conn_id for m in hub.of_user(100)) == [1, 2]
    assert hub.of_user(200) == [c]
    assert hub.of_user(999) == []
    assert hub.users() == 2
    assert len(hub) == 3


def test_hub_of_user_returns_a_copy() -> None:
    hub: Hub[Member] = Hub()
    a = authed(1, 100)
    hub.add(a)
    hub.bind(a)
    hub.of_user(100).clear()
    assert hub.of_user(100) == [a]


def test_hub_bind_requires_a_login() -> None:
    hub: Hub[Member] = Hub()
    with pytest.raises(AssertionError):
        hub.bind(Member(1))


def test_hub_remove_unindexes_and_drops_empty_users() -> None:
    hub: Hub[Member] = Hub()
    a, b = authed(1, 100), authed(2, 100)
    for m in (a, b):
        hub.add(m)
        hub.bind(m)
    hub.remove(a)
    assert hub.get(1) is None
    assert hub.of_user(100) == [b]
    assert hub.users() == 1
    hub.remove(b)
    assert hub.of_user(100) == []
    assert hub.users() == 0
    assert len(hub) == 0


def test_hub_remove_is_idempotent_and_tolerates_unknown_members() -> None:
    hub: Hub[Member] = Hub()
    a = authed(1, 100)
    hub.add(a)
    hub.bind(a)
    hub.remove(a)
    hub.remove(a)
    hub.remove(Member(42))
    hub.remove(authed(43, 100))  # user index gone already
    assert len(hub) == 0
    assert hub.users() == 0


def test_hub_remove_unauthenticated_member() -> None:
    hub: Hub[Member] = Hub()
    a, b = Member(1), authed(2, 100)
    for m in (a, b):
        hub.add(m)
    hub.bind(b)
    hub.remove(a)
    assert len(hub) == 1
    assert hub.of_user(100) == [b]


def test_hub_iteration_yields_every_member() -> None:
    hub: Hub[Member] = Hub()
    members = [authed(i, 100 + i % 2) for i in range(1, 6)]
    for m in members:
        hub.add(m)
    assert sorted(m.conn_id for m in hub) == [1, 2, 3, 4, 5]


def test_hub_iteration_is_safe_while_removing() -> None:
    hub: Hub[Member] = Hub()
    members = [authed(i, 100 + i % 2) for i in range(1, 6)]
    for m in members:
        hub.add(m)
        hub.bind(m)
    seen = []
    for m in hub:
        seen.append(m.conn_id)
        hub.remove(m)
    assert sorted(seen) == [1, 2, 3, 4, 5]
    assert len(hub) == 0
    assert hub.users() == 0


def test_hub_iteration_is_safe_while_adding() -> None:
    hub: Hub[Member] = Hub()
    hub.add(Member(1))
    seen = []
    for m in hub:
        seen.append(m.conn_id)
        hub.add(Member(m.conn_id + 100))
    assert seen == [1]
    assert len(hub) == 2
