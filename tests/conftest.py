"""Hypothesis profiles for the property tests (tests/test_fuzz*.py).

- "ci" (the default): the same cases on every run (derandomize), no example database written, no
  per-example deadline (timings on a shared 2-core machine are noise).
- "fuzz", for manual runs: 20x as many cases, fresh random ones each run, failures kept in
  .hypothesis/ for replay: ``pytest --hypothesis-profile=fuzz tests/test_fuzz.py``.

The fuzz tests size their budgets as multiples of the profile's max_examples (100 for "ci").

Also the fixture `quick_bench`, for the tests that run `rnncore bench` on tiny cases.
"""

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def quick_bench(monkeypatch):
    """bench's timing at its quickest, for the tests that run `rnncore bench` on tiny cases: %peak
    pairs at their fewest (one per round), pauses of 10 ms instead of 0.3 s, and one untimed call
    to settle (not 0.1 s of them). Every pause of a
    real run (one per block of calls, one per settled %peak pair) made each tiny bench_case in the
    tests take ~15 s."""
    from rnncore.bench import table, timing

    monkeypatch.setattr(table, "PEAK_PAIRS", timing.ROUNDS)
    monkeypatch.setattr(timing, "QUIET_S", 0.01)
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)
