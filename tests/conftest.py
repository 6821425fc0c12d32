"""Hypothesis profiles for the property tests (tests/test_fuzz*.py).

- "ci" (the default): the same cases on every run (derandomize), no example database written, no
  per-example deadline (timings on a shared 2-core machine are noise).
- "fuzz", for manual runs: 20x as many cases, fresh random ones each run, failures kept in
  .hypothesis/ for replay: ``pytest --hypothesis-profile=fuzz tests/test_fuzz.py``.

The fuzz tests size their budgets as multiples of the profile's max_examples (100 for "ci").
"""

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile("ci")
