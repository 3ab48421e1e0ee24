"""The limits an operation runs within, checked before it runs: the size of its
variables, its cost, and (over HTTP) its time.

**Variables** (``check_variables``): at most ``graphql_max_input_values`` values in all
(every list item and object entry, at any depth) and ``graphql_max_input_depth`` levels
of lists and objects, checked before any variable is coerced, walked for the cost, or
encoded for the response cache's key. A list literal in the document is bounded by the
token limit instead.

**Cost** (``operation_cost``): the most field values the answer can hold. Every field
counts once for each time it may be resolved, which is the product of the sizes of the
lists above it. A list with a page size (``first``, from the document, a variable or its
default) counts at that size, at most ``MAX_PAGE`` (the resolvers refuse more); a
connection's page size is its ``edges``'. A list without one counts at the bound the
code keeps it to (``list_sizes``), else at ``MAX_PAGE``. Fields are collected as the
executor collects them: fragments expanded, the same response key once; a field of an
interface counts at its costliest implementation; ``@skip`` and ``@include`` are not
evaluated (the field counts). Introspection counts too, its lists at the schema's own
sizes (``_introspection_sizes``): 30 aliased introspection queries take seconds.

**Time**: the view runs a query within ``graphql_timeout_seconds`` (``view.py``); a
mutation runs to its end (``Limits`` lifts the deadline), since stopping a write midway
would leave its outcome unknown to the caller and could cut off a payment provider's
call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_list_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType

from app.alerts.service import MAX_RULES
from app.graphql.analytics import MAX_RANGE
from app.graphql.enums import Window
from app.graphql.errors import Code, error
from app.pages import MAX_PAGE
from app.settings import Settings
from app.usage.wire import MAX_TAGS
from app.webhooks.endpoints import MAX_ENDPOINTS

Sizes = Mapping[tuple[str, str], int]
QUERY = OperationType.QUERY
MUTATION = StrawberryOperationType.MUTATION

# Lists without a page size whose length the code bounds, by (type, field).
LIST_SIZES: dict[tuple[str, str], int] = {
    ("ApiKey", "windows"): len(Window),
    ("Organization", "alertRules"): MAX_RULES,
    ("Organization", "webhookEndpoints"): MAX_ENDPOINTS,
    # One bucket per hour over the longest hourly range (31 days) is the longest series.
    ("UsageSummary", "series"): max(
        span // width
        for span, width in zip(
            MAX_RANGE.values(), (timedelta(hours=1), timedelta(days=1)), strict=True
        )
    ),
    ("UsageRecord", "tags"): MAX_TAGS,
}


def list_sizes(settings: Settings) -> dict[tuple[str, str], int]:
    """``LIST_SIZES`` and the bounds that are settings."""
    return LIST_SIZES | {("WebhookDelivery", "attempts"): settings.alert_webhook_max_attempts}


# -- variables ------------------------------------------------------------------------------


def check_variables(variables: object, settings: Settings) -> GraphQLError | None:
    """Why ``variables`` (as the request sent them) are refused, or None; walked
    without recursion, and only as far as the limits allow."""
    most, deepest = settings.graphql_max_input_values, settings.graphql_max_input_depth
    count = 0
    pending: list[tuple[str, object, int]] = [("variables", variables, 0)]
    while pending:
        where, value, depth = pending.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > deepest:
            return error(
                Code.BAD_USER_INPUT,
                f"{where}: nested more than {deepest} levels deep, more than variables may be",
            )
        count += len(value)
        if count > most:
            return error(
                Code.BAD_USER_INPUT,
                f"{where}: the variables hold more than {most} values (list items and "
                "object fields, nested ones included), more than they may",
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        pending.extend((f"{where}.{key}", item, depth + 1) for key, item in items)
    return None


# -- cost ---------------------------------------------------------------------------------


def cost_error(cost: int, limit: int) -> GraphQLError:
    return error(
        Code.GRAPHQL_VALIDATION_FAILED,
        f"the operation may cost {cost}, more than the limit of {limit}: ask for smaller "
        "pages (first) or fewer fields (the cost counts each field once per item of every "
        "list above it)",
    )


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    sizes: Sizes,
) -> int:
    """The cost of the operation ``operation_name`` runs with ``variables``; 0 when
    there is no such operation (the executor refuses it)."""
    operations = _operations(document)
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return 0
    return _Cost(schema, document, operations[0], variables or {}, sizes).operation()


def worst_cost(schema: GraphQLSchema, document: DocumentNode, sizes: Sizes) -> int:
    """The cost of the document's costliest operation with every page size a variable
    gives at its largest: what no request sending this document can exceed."""
    return max(
        (_Cost(schema, document, o, None, sizes).operation() for o in _operations(document)),
        default=0,
    )


def _operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


class Limits(SchemaExtension):
    """Refuses an operation whose variables are too large or that costs too much, before
    it runs; lifts a mutation's deadline (see the module's docstring)."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        if execution.result is None and document is not None:
            refusal = refusal_of(
                context.runtime.settings,
                execution.schema._schema,
                document,
                execution.operation_name,
                execution.variables,
            )
            if refusal is not None:
                execution.result = ExecutionResult(None, [refusal])
        if execution.operation_type is MUTATION and context.deadline is not None:
            context.deadline.reschedule(None)
        yield


def refusal_of(
    settings: Settings,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: object,
) -> GraphQLError | None:
    """Why the operation is refused before it runs, or None."""
    refused = check_variables(variables, settings)
    if refused is not None:
        return refused
    given = variables if isinstance(variables, dict) else None
    cost = operation_cost(schema, document, operation_name, given, list_sizes(settings))
    limit = settings.graphql_max_cost
    return cost_error(cost, limit) if cost > limit else None


class _Cost:
    """One operation's cost; ``variables`` None: every page size a variable gives at
    its largest."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
        sizes: Sizes,
    ) -> None:
        self.schema = schema
        self.operation_node = operation
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables: dict[str, Any] | None = None
        if variables is not None:
            self.variables = dict(variables)
            for definition in operation.variable_definitions or ():
                name, default = definition.variable.name.value, definition.default_value
                if name not in self.variables and isinstance(default, IntValueNode):
                    self.variables[name] = int(default.value)
        self.sizes = {**sizes, **_introspection_sizes(schema)}
        # A selection's cost per value of its type: fragments spread in many places, or
        # nested in each other, are worked out once.
        self._known: dict[tuple[str, tuple[int, ...], int | None], int] = {}

    def operation(self) -> int:
        root = self.schema.get_root_type(self.operation_node.operation)
        if root is None:
            return 0
        return self.selections(root, (self.operation_node.selection_set,), None)

    def selections(
        self,
        parent: Any,
        selection_sets: tuple[SelectionSetNode, ...],
        page: int | None,
    ) -> int:
        """The cost of ``selection_sets`` for one value of type ``parent``; ``page`` is
        the page size of the connection ``parent`` is, for the list it pages."""
        key = (parent.name, tuple(id(s) for s in selection_sets), page)
        known = self._known.get(key)
        if known is not None:
            return known
        if is_abstract_type(parent):
            possible = self.schema.get_possible_types(parent)
            cost = max((self.selections(t, selection_sets, page) for t in possible), default=0)
        else:
            fields = _collect(self.schema, self.fragments, parent, selection_sets)
            cost = sum(self.field(parent, nodes, page) for nodes in fields.values())
        self._known[key] = cost
        return cost

    def field(self, parent: GraphQLObjectType, nodes: list[FieldNode], page: int | None) -> int:
        name = nodes[0].name.value
        definition = self._definition(parent, name)
        subselections = tuple(n.selection_set for n in nodes if n.selection_set)
        if definition is None or not subselections:
            return 1
        first = self._first(nodes[0], definition)
        if is_list_type(get_nullable_type(definition.type)):
            items = first or page or self.sizes.get((parent.name, name), MAX_PAGE)
            page = None
        else:
            items, page = 1, first
        return 1 + items * self.selections(get_named_type(definition.type), subselections, page)

    def _definition(self, parent: GraphQLObjectType, name: str) -> GraphQLField | None:
        if parent is self.schema.query_type and self.operation_node.operation is QUERY:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        field: GraphQLField | None = parent.fields.get(name)
        return field

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The page size asked for, within what the resolvers allow; None without one."""
        argument = definition.args.get("first")
        if argument is None:
            return None
        value: Any = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                if self.variables is None:
                    return MAX_PAGE
                value = self.variables.get(given.value.name.value, value)
        if not isinstance(value, int) or isinstance(value, bool):
            return MAX_PAGE
        return min(max(value, 1), MAX_PAGE)


def _collect(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    type_: GraphQLObjectType,
    selection_sets: tuple[SelectionSetNode, ...],
) -> dict[str, list[FieldNode]]:
    """The fields of ``selection_sets`` on ``type_`` by response key, fragments expanded
    (each spread once), as the executor groups them."""
    fields: dict[str, list[FieldNode]] = {}
    spread: set[str] = set()

    def visit(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if _applies(schema, selection.type_condition, type_):
                    visit(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if name not in spread and fragment is not None:
                    spread.add(name)
                    if _applies(schema, fragment.type_condition, type_):
                        visit(fragment.selection_set)

    for selection_set in selection_sets:
        visit(selection_set)
    return fields


def _applies(schema: GraphQLSchema, condition: NamedTypeNode | None, type_: Any) -> bool:
    if condition is None:
        return True
    named = schema.get_type(condition.name.value)
    if named is type_:
        return True
    return is_abstract_type(named) and schema.is_sub_type(named, type_)


@lru_cache(maxsize=4)
def _introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], int]:
    """Introspection's lists at this schema's sizes: every type, and of the others their
    mean length (rounded up), which is what a walk over the whole schema multiplies by.
    (Their longest would count the standard introspection query at some 400,000.)"""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in with_fields for f in t.fields.values()]

    def mean(total: int, over: int) -> int:
        return max(1, math.ceil(total / max(over, 1)))

    return {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): len(schema.directives),
        ("__Type", "fields"): mean(len(fields), len(types)),
        ("__Type", "interfaces"): mean(sum(len(t.interfaces) for t in with_fields), len(types)),
        ("__Type", "possibleTypes"): mean(
            sum(len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)),
            len(types),
        ),
        ("__Type", "enumValues"): mean(
            sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType)), len(types)
        ),
        ("__Type", "inputFields"): mean(
            sum(len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)),
            len(types),
        ),
        ("__Field", "args"): mean(sum(len(f.args) for f in fields), len(fields)),
        ("__Directive", "args"): mean(
            sum(len(d.args) for d in schema.directives), len(schema.directives)
        ),
    }
