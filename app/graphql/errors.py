"""Top-level GraphQL errors carry ``extensions.code``, as the common clients expect.

Expected failures of a mutation are ``userErrors`` in its payload instead; these are
for a query that cannot be answered at all (not signed in, not allowed, bad input).
Anything else is a fault: masked as ``INTERNAL_SERVER_ERROR`` and logged.
"""

from __future__ import annotations

from enum import StrEnum

from graphql import GraphQLError


class Code(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


def error(code: Code, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value})


def is_fault(err: GraphQLError) -> bool:
    """An exception raised by our code that is not a GraphQLError: mask it."""
    original = err.original_error
    return original is not None and not isinstance(original, GraphQLError)
