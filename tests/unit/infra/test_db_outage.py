"""A lost or busy database is an outage to wait out; a statement its data broke is not."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from infra.db import is_database_outage


def _operational(orig: Exception) -> OperationalError:
    return OperationalError("INSERT ...", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        _operational(psycopg.OperationalError("connection refused")),  # no SQLSTATE: never reached it
        _operational(errors.AdminShutdown("terminating connection")),  # 57P01
        _operational(errors.ConnectionFailure("lost")),  # 08006
        _operational(errors.TooManyConnections("too many clients")),  # 53300
        _operational(errors.SerializationFailure("could not serialize")),  # 40001
        InterfaceError("SELECT 1", {}, psycopg.InterfaceError("connection closed")),
    ],
)
def test_a_lost_or_busy_database_is_an_outage(error: Exception) -> None:
    assert is_database_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        _operational(errors.ProgramLimitExceeded("index row size exceeds maximum")),  # 54000
        _operational(errors.QueryCanceled("statement timeout")),  # 57014
        DataError("INSERT ...", {}, errors.NumericValueOutOfRange("out of range")),
        ValueError("a bug"),
    ],
)
def test_a_statement_its_data_broke_is_not(error: Exception) -> None:
    assert not is_database_outage(error)
