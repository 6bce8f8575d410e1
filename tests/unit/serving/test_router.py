"""The router: sticky buckets, the step's share, shadow mirroring, whole swaps."""

from __future__ import annotations

from typing import Any

from loopline.serving.router import CANARY, CHAMPION, SHADOW, Router, Split, bucket


class Version:
    def __init__(self, number: str) -> None:
        self.number = number


def router(weight: float, mode: str = "canary") -> tuple[Router, Any, Any]:
    champion, challenger = Version("1"), Version("2")
    routes = Router(champion)  # type: ignore[arg-type]
    routes.set_split(challenger, Split(weight, mode, "rollout-a"))  # type: ignore[arg-type]
    return routes, champion, challenger


def test_a_key_always_reaches_the_same_version_within_a_step() -> None:
    routes, _, _ = router(25)
    for key in (f"customer-{i}" for i in range(500)):
        assert len({routes.pick(key)[1].number for _ in range(5)}) == 1


def test_the_share_on_the_challenger_follows_the_weight() -> None:
    for weight in (5, 25, 50):
        routes, _, challenger = router(weight)
        share = sum(routes.pick(f"k{i}")[1] is challenger for i in range(20_000)) / 20_000
        assert abs(share - weight / 100) < 0.01, (weight, share)


def test_a_higher_step_only_moves_keys_over_never_back() -> None:
    keys = [f"k{i}" for i in range(5000)]
    at_5 = {k for k in keys if router(5)[0].pick(k)[0] == CANARY}
    at_25 = {k for k in keys if router(25)[0].pick(k)[0] == CANARY}
    assert at_5 < at_25


def test_buckets_belong_to_one_rollout() -> None:
    keys = [f"k{i}" for i in range(2000)]
    first = {k for k in keys if bucket(k, "rollout-a") < 25}
    second = {k for k in keys if bucket(k, "rollout-b") < 25}
    assert first != second and 0.1 < len(first & second) / len(first) < 0.4


def test_shadow_answers_from_the_champion_and_mirrors_the_share() -> None:
    routes, champion, _ = router(30, "shadow")
    picked = [routes.pick(f"k{i}") for i in range(3000)]
    assert {route for route, _ in picked} == {CHAMPION}
    assert all(model is champion for _, model in picked)
    mirrored = [routes.shadows(f"k{i}") for i in range(3000)]
    share = sum(bool(m) for m in mirrored) / 3000
    assert abs(share - 0.30) < 0.03
    assert {(r, m.number) for ms in mirrored for r, m in ms} == {(SHADOW, "2")}
    assert router(30)[0].shadows("k1") == []  # a canary mirrors nothing


def test_clearing_the_split_leaves_the_champion_alone() -> None:
    routes, champion, challenger = router(100)
    assert routes.pick("k")[1] is challenger
    assert routes.clear_split() is challenger
    assert routes.pick("k") == (CHAMPION, champion) and routes.split is None
    assert CANARY not in routes.served()


def test_the_routing_key_is_the_named_fields_of_the_first_row() -> None:
    from loopline.serving.app import _key

    assert _key({"inputs": {"user": "u7", "device": "d1", "x": 3}}, ("user", "device")) == "u7|d1"
    assert _key({"rows": [{"user": "u8"}, {"user": "u9"}]}, ("user",)) == "u8"
    assert _key({"inputs": {"user": "u7"}}, ()) == ""  # no fields: the request id keys it


def test_a_swap_replaces_one_route_whole_and_keeps_the_split() -> None:
    routes, champion, _ = router(50)
    newer = Version("3")
    assert routes.swap(CHAMPION, newer) is champion  # type: ignore[arg-type]
    picked = {routes.pick(f"k{i}")[1].number for i in range(200)}
    assert picked == {"3", "2"} and routes.split == Split(50, "canary", "rollout-a")
