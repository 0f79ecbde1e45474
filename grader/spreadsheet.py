"""Cells for CSV files that people open in a spreadsheet: text that a spreadsheet would run as a formula is
defused (OWASP "CSV injection"): a leading = + - @, tab or carriage return gets a leading apostrophe."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is text a spreadsheet would evaluate; numbers written as text stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]
