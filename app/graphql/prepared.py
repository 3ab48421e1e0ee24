"""Queries the full path has admitted, run again on graphql-core's ``execute`` directly.

Strawberry's ``schema.execute`` runs every request through its extensions: a parser and
a validation cache lookup, the token, depth and alias limits, error codes and masking,
each a hook per phase. A document that passed parsing and validation once passes them
every time (they depend on the text and the schema, never on the caller or the
variables), so ``Admit`` records each query document that reaches execution over HTTP,
keyed by its text, and the view runs those again with ``execute``:
the same resolvers, the same context, the same error codes and masking
(``errors.client_errors``). It also notes whether each document's answers may be cached
(``response_cache.py``). Anything else (a new or invalid document, a mutation, a
GET, extensions in the body) takes the full path, which is also where the limits keep
refusing what they refuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any, Literal, cast

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, execute
from graphql.language import OperationType as AstOperationType
from starlette.requests import Request
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema import Schema
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.graphql.errors import client_errors
from app.graphql.executor import Execution, Plan, Unsupported, plan
from app.graphql.limits import list_sizes, worst_cost
from app.graphql.response_cache import cacheable

QUERY = AstOperationType.QUERY
# The body keys the fast path understands; any other (``extensions``) goes the full way.
_KEYS = frozenset(("query", "operationName", "variables"))


@dataclass(slots=True)
class Prepared:
    document: DocumentNode
    first: str | None  # the operation Strawberry runs when no operationName is sent
    queries: frozenset[str | None]  # the names of the document's query operations
    cacheable: bool  # its answers may be kept (``response_cache.cacheable``)
    # By operation: how ``executor.py`` runs it, or None where graphql-core must.
    plans: dict[str | None, Plan | None] = field(default_factory=dict)

    def plan(self, schema: GraphQLSchema, operation_name: str | None) -> Plan | None:
        if operation_name not in self.plans:
            try:
                self.plans[operation_name] = plan(schema, self.document, operation_name)
            except Unsupported:
                self.plans[operation_name] = None
        return self.plans[operation_name]

    def query_named(self, name: str | None) -> str | Literal[False] | None:
        """The name to execute for ``operationName`` ``name``, as Strawberry picks it;
        False unless that operation is a query of the document."""
        chosen = self.first if name is None else name
        return chosen if chosen in self.queries else False


class Documents:
    """Admitted query documents by text; the oldest go past ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._documents: dict[str, Prepared] = {}

    def get(self, query: str) -> Prepared | None:
        return self._documents.get(query)

    def add(self, query: str, document: DocumentNode, schema: GraphQLSchema) -> None:
        if query in self._documents:
            return
        if len(self._documents) >= self.size:
            del self._documents[next(iter(self._documents))]
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        names = [None if o.name is None else o.name.value for o in operations]
        queries = [n for n, o in zip(names, operations, strict=True) if o.operation is QUERY]
        self._documents[query] = Prepared(
            document, names[0], frozenset(queries), cacheable(schema, document)
        )


class Admit(SchemaExtension):
    """Records a query sent over HTTP once it has passed parsing and validation (this
    hook runs only then): validation covers every operation of the document."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        query, document, schema = execution.query, execution.graphql_document, execution.schema
        if (
            execution.operation_type is OperationType.QUERY
            and isinstance(execution.context.request, Request)
            and query is not None
            and document is not None
            and self.documents.get(query) is None
        ):
            # The fast path checks no cost: it takes only documents within the limit
            # with any variables, the others being costed anew each time (``limits.py``).
            settings = execution.context.runtime.settings
            if (
                worst_cost(schema._schema, document, list_sizes(settings))
                <= settings.graphql_max_cost
            ):
                self.documents.add(query, document, schema._schema)
        yield


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request for a query of an admitted document, in the plain form."""

    query: str
    prepared: Prepared
    operation_name: str | None  # the operation to run
    variables: dict[str, Any] | None


def admitted_request(documents: Documents, body: object) -> Admitted | None:
    """What a JSON body asks for, if it is a query of an admitted document in the plain
    form; None for anything else (the full path handles it)."""
    if not isinstance(body, dict) or not _KEYS.issuperset(body):
        return None
    query, name, variables = body.get("query"), body.get("operationName"), body.get("variables")
    if not isinstance(query, str) or not isinstance(name, str | None):
        return None
    if not isinstance(variables, dict | None):
        return None
    prepared = documents.get(query)
    if prepared is None:
        return None
    chosen = prepared.query_named(name)
    return None if chosen is False else Admitted(query, prepared, chosen, variables)


async def run(
    schema: Schema,
    prepared: Prepared,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: object,
) -> ExecutionResult:
    """The operation executed as Strawberry would (by ``executor.py`` where it can), its
    errors logged, coded and masked as the schema's extensions do them."""
    arguments: dict[str, Any] = {
        "context_value": context,
        "operation_name": operation_name,
        # Strawberry's quicker check (a TypeGuard in graphql-core's signature, a bool here).
        "is_awaitable": cast(Any, optimized_is_awaitable),
        "operation_extensions": None,  # what Strawberry passes for a body without them
    }
    data: dict[str, Any] | None
    errors: list[GraphQLError] | None
    operation = prepared.plan(schema._schema, operation_name)
    if operation is None:
        result = execute(
            schema._schema,
            prepared.document,
            variable_values=variables,
            executor_class=schema.execution_context_class,
            **arguments,
        )
        if isawaitable(result):
            result = await result
        data, errors = result.data, result.errors
    else:
        executor = schema.execution_context_class.build(
            schema._schema, prepared.document, raw_variable_values=variables, **arguments
        )
        if isinstance(executor, list):  # the variables do not fit
            data, errors = None, executor
        else:
            execution = Execution(operation, executor)
            data = await execution.run()
            errors = execution.errors or None
    if errors:
        schema.process_errors(errors)  # logs the originals, as Strawberry does
        errors = client_errors(errors)
    return ExecutionResult(data=data, errors=errors)
