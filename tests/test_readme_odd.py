"""The README's odd-numbered Python snippets (test_readme.py runs the even-numbered ones)."""

from test_readme import BLOCKS, snippet_tests

snippet_results, test_readme_snippet_runs = snippet_tests(range(1, len(BLOCKS), 2))
