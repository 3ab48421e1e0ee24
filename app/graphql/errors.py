"""Top-level GraphQL errors carry ``extensions.code``, as the common clients expect.

Expected failures of a mutation are ``userErrors`` in its payload instead; these are
for a query that cannot be answered at all (not signed in, not allowed, bad input).
Anything else is a fault: masked as ``INTERNAL_SERVER_ERROR`` and logged.

Errors of the request as a whole, raised before any resolver runs, get the codes Apollo
Server gives them, which Apollo clients and most others branch on:
``GRAPHQL_PARSE_FAILED`` (not GraphQL, or past the token limit),
``GRAPHQL_VALIDATION_FAILED`` (not valid against the schema, or past the depth or alias
limit), ``BAD_USER_INPUT`` (variables that do not fit their types) and ``BAD_REQUEST``
(not a GraphQL-over-HTTP request at all: see ``app/graphql/http.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum

from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError
from strawberry.extensions import MaskErrors, SchemaExtension


class Code(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    # The server cannot serve this now (a lost connection to the event bus): retry.
    UNAVAILABLE = "UNAVAILABLE"
    # A query stopped at its deadline (``graphql_timeout_seconds``).
    TIMEOUT = "TIMEOUT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_REQUEST = "BAD_REQUEST"


def error(code: Code, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value})


def is_fault(err: GraphQLError) -> bool:
    """An exception raised by our code that is not a GraphQLError: mask it."""
    original = err.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _give_code(errors: Iterable[GraphQLError] | None, code: Code) -> None:
    # In place: the validation cache hands the same error objects to every request
    # sending that document, which is harmless as each always gets the same code.
    for err in errors or ():
        if err.extensions is None:
            err.extensions = {}
        err.extensions.setdefault("code", code.value)


class RequestErrorCodes(SchemaExtension):
    """Codes the errors of the request as a whole: parsing, validation, variables."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLSyntaxError as exc:
            # ParserCache parses as its hook starts, so a syntax error is raised out of
            # the operation (and returned by the schema) rather than being a result here.
            _give_code([exc], Code.GRAPHQL_PARSE_FAILED)
            raise

    def on_validate(self) -> Iterator[None]:
        yield
        _give_code(self.execution_context.pre_execution_errors, Code.GRAPHQL_VALIDATION_FAILED)

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, ExecutionResult) and result.errors:
            code_variable_errors(result.errors)


def code_variable_errors(errors: Iterable[GraphQLError]) -> None:
    # Every field's error has a path; one without is of the variables, checked before
    # any field runs.
    _give_code((e for e in errors if e.path is None and not is_fault(e)), Code.BAD_USER_INPUT)


class MaskFaults(MaskErrors):
    """Replaces a fault's message and code, so no detail of our code reaches a client."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_fault, error_message="Internal server error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": Code.INTERNAL_SERVER_ERROR.value}
        return masked


_MASK = MaskFaults()


def client_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """An execution's errors as the extensions above leave them (``prepared.run``, which
    runs without them): the variables' coded, faults masked."""
    code_variable_errors(errors)
    return [_MASK.anonymise_error(e) if is_fault(e) else e for e in errors]
