"""Hypothesis profiles of the core tests: `mutation` makes the property tests repeatable.

The mutation run (docs/MUTATION.md) passes `--hypothesis-profile=mutation`, so a
mutant is judged on the same examples every time and no example database
carries failures from one mutant's run into another's.
"""
from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None)
