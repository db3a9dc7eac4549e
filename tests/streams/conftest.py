"""Hypothesis profiles of the core tests: `mutation` makes the property tests repeatable and quick to fail.

The mutation run (docs/MUTATION.md) passes `--hypothesis-profile=mutation`: a
mutant is judged on the same examples every time, no example database carries
failures from one mutant's run into another's, and a failure is not shrunk
(the run only needs to know that a test fails, and shrinking takes minutes).
"""
from hypothesis import Phase, settings

settings.register_profile("mutation", derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
