"""The docs' error table is the code's: every row's message comes from running it."""

from __future__ import annotations

import error_table


def test_the_readme_error_table_is_what_the_code_raises():
    expected = error_table.render()
    actual = error_table.readme_table(error_table.README.read_text())
    assert actual == expected, "regenerate it with: python tests/error_table.py --write"
