"""What the tests allow to differ between the pure and the compiled build.

Both builds run the same tests (.ci/run). The compiled one differs only where
README's "Two builds" says so: mypyc checks the type of each typed parameter
before a compiled function runs, so an argument of the wrong type to a
compiled call raises mypyc's plain `TypeError` ("str object expected; got
bytes") where the pure build raises `InvalidTypeError` with its code, and a
bool given for an int may be taken as 0 or 1 instead of being refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import usersession
from usersession import ErrorCode, InvalidTypeError, SessionError

_MYPYC_TYPE_ERROR = re.compile(r".+ object expected; got .+")

takes_a_bool_for_an_int = pytest.mark.skipif(
    usersession.compiled,
    reason="compiled build: mypyc may take a bool for an int (README, Two builds)",
)
"""For a test that a bool is refused where an int is expected."""


def is_mypyc_type_error(error: BaseException) -> bool:
    """Whether `error` is mypyc's check of a typed parameter, on the compiled build."""
    return (
        usersession.compiled
        and type(error) is TypeError
        and _MYPYC_TYPE_ERROR.fullmatch(str(error)) is not None
    )


@contextmanager
def refused(code: ErrorCode, error: type[SessionError] = InvalidTypeError) -> Iterator[None]:
    """The block must raise `error` with `code`, or on the compiled build
    mypyc's `TypeError` for an argument of the wrong type."""
    with pytest.raises((error, TypeError)) as caught:
        yield
    if not is_mypyc_type_error(caught.value):
        assert isinstance(caught.value, error), repr(caught.value)
        assert caught.value.code is code
