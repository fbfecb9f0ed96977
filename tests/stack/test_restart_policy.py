"""When ``sonalyze up`` starts a dead service again, and when it gives up: on a fake clock."""

from __future__ import annotations

from sonalyze.stack.processes import RestartPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_doubles_and_five_deaths_within_a_minute_give_up() -> None:
    clock = Clock()
    policy = RestartPolicy(limit=5, window_s=60, first_wait_s=0.5, max_wait_s=8, clock=clock)
    waits = []
    for _ in range(4):
        waits.append(policy.died())
        clock.now += 10
    assert waits == [0.5, 1.0, 2.0, 4.0]
    assert policy.died() is None and policy.recent == 5


def test_deaths_older_than_the_window_are_forgotten_and_the_wait_is_capped() -> None:
    clock = Clock()
    policy = RestartPolicy(limit=3, window_s=60, first_wait_s=4, max_wait_s=6, clock=clock)
    assert (policy.died(), policy.died()) == (4, 6)
    clock.now += 61  # a service that crashes now and then is always started again
    assert policy.died() == 4 and policy.recent == 1
