"""The gateway's rate limits, on a fake clock."""

from __future__ import annotations

from sonalyze_gateway.limits import FailureWindow, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [None] * 3
    assert bucket.take() == 0.5  # one token takes half a second at 2/s
    clock.now += 0.5
    assert bucket.take() is None and bucket.take() == 0.5
    clock.now += 60  # refills to the burst, no further
    assert [bucket.take() for _ in range(4)][-1] is not None


def test_failure_window_blocks_after_the_limit_until_the_oldest_expires() -> None:
    clock = Clock()
    window = FailureWindow(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert window.blocked("a") is None
        window.begin(["a"])
        clock.now += 1
    assert window.blocked("a") == 57  # the first failure (at 100) leaves the window at 160
    assert window.blocked("b") is None, "keys are independent"
    clock.now += 57
    assert window.blocked("a") is None


def test_failure_window_forgets_the_oldest_keys_beyond_its_size() -> None:
    window = FailureWindow(limit=1, window_s=60, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        window.begin([key])
    assert window.blocked("a") is None and window.blocked("c") is not None


def test_attempts_in_flight_count_and_a_success_takes_its_own_back() -> None:
    clock = Clock()
    window = FailureWindow(limit=2, window_s=60, clock=clock)
    first = window.begin(["device", "address"])  # not yet answered
    clock.now += 1
    window.begin(["device", "address"])
    assert window.wait(["other device", "address"]) == 59, "two in flight fill the window"
    window.succeeded(["device", "address"], first)
    assert window.wait(["device"]) is None and window.wait(["address"]) is None
