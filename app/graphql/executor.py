"""A leaner executor for admitted queries: the same resolvers and answers as
graphql-core's, a fraction of the work per field.

graphql-core's executor pays, for every field of every object, a resolve-info object,
Strawberry's resolver wrapper, a completion call per wrapper type and a check for
awaitables: some 4 us a field, 3 ms for a usage page of 50 records of 15 fields. Most
of those fields are plain attributes of Strawberry objects. Here the field selection
of each object type is worked out once per document (``Plan``); executing it reads
attributes directly, checks built-in scalars by their Python type, and builds a
resolve-info only for fields that have a resolver. Resolvers that return awaitables
are gathered together, level by level, so DataLoaders batch as before.

It follows graphql-core (the "Executing" and "Value Completion" sections of the spec)
in what it answers: the order of fields, null propagation to the nearest nullable
parent, errors located at their field's path with the same messages. Documents it
does not cover (directives such as ``@skip``, fragment variables, fields of an
interface or union type) are left to graphql-core: ``supports`` says which.
``tests/graphql/test_executor.py`` runs both on the same queries and compares.
"""

from __future__ import annotations

import asyncio
import inspect as python_inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    is_abstract_type,
    is_leaf_type,
    located_error,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined, inspect
from graphql.type.introspection import TypeNameMetaFieldDef
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

MAX_INT, MIN_INT = 2**31 - 1, -(2**31)

# How a value of a type is completed (``Completion.kind``).
LEAF, OBJECT, LIST = range(3)


class Unsupported(Exception):
    """The document uses what this executor leaves to graphql-core."""


def _fast_leaf(named: Any) -> type[Any] | None:
    """The Python type a built-in scalar's value already has when it needs no coercion."""
    if named is GraphQLString or named is GraphQLID:
        return str
    if named is GraphQLBoolean:
        return bool
    if named is GraphQLFloat:
        return float
    return int if named is GraphQLInt else None


def _enum_names(leaf: Any) -> dict[Any, str] | None:
    """A Strawberry enum's GraphQL names by its Python members: what its
    ``coerce_output_value`` finds by looping over the values."""
    members = getattr(leaf, "wrapped_cls", None)
    if not isinstance(leaf, GraphQLEnumType) or members is None:
        return None
    return {
        member: name
        for name, value in leaf.values.items()
        for member in members
        if member.value == value.value
    }


@dataclass(slots=True, eq=False)
class Completion:
    """How a value of ``type`` is completed (graphql-core's ``complete_value``)."""

    kind: int
    type: Any  # the named type, or the list type
    non_null: bool = False  # null is an error here (the type was wrapped in NonNull)
    inner: Completion | None = None  # LIST: its items' completion
    python_type: type[Any] | None = None  # LEAF: values already of this type pass as they are
    names: dict[Any, str] | None = None  # LEAF, a Strawberry enum: its names by member
    # OBJECT: the strawberry classes a value may be (is_type_of), or None: not checked.
    accepts: tuple[type, ...] | None = None
    check: Any = None  # OBJECT: an is_type_of of the type's own, called with an info
    fields: tuple[FieldPlan, ...] = ()  # OBJECT: its selections


@dataclass(slots=True, eq=False)
class FieldPlan:
    parent: GraphQLObjectType  # the type the field is of
    key: str  # the response key: alias or name
    name: str
    nodes: list[FieldNode]
    definition: GraphQLField
    completion: Completion
    attribute: str | None  # a plain attribute of the source, read with getattr
    has_args: bool
    typename: bool = False  # __typename
    # A built-in scalar's Python type, when the field is one (or a non-null one).
    leaf_type: type[Any] | None = field(init=False)

    def __post_init__(self) -> None:
        self.leaf_type = self.completion.python_type

    @property
    def type(self) -> GraphQLOutputType:
        return self.definition.type


@dataclass(slots=True, eq=False)
class Plan:
    """One operation of an admitted document, worked out for execution."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    root: Completion = field(init=False)

    def __post_init__(self) -> None:
        root_type = self.schema.query_type
        assert root_type is not None
        self.root = self._object(root_type)
        self.root.fields = self._collect(root_type, [self.operation.selection_set])

    def _completion(self, graphql_type: Any, nodes: list[FieldNode]) -> Completion:
        """How to complete a value of ``graphql_type`` selected by ``nodes``: worked out
        whole (sub-selections included) now, so ``Unsupported`` comes before execution."""
        if isinstance(graphql_type, GraphQLNonNull):
            completion = self._completion(graphql_type.of_type, nodes)
            completion.non_null = True
            return completion
        if isinstance(graphql_type, GraphQLList):
            items = self._completion(graphql_type.of_type, nodes)
            return Completion(LIST, graphql_type, inner=items)
        if is_leaf_type(graphql_type):
            return Completion(
                LEAF,
                graphql_type,
                python_type=_fast_leaf(graphql_type),
                names=_enum_names(graphql_type),
            )
        if is_abstract_type(graphql_type):
            raise Unsupported(f"a field of the abstract type {graphql_type}")
        completion = self._object(graphql_type)
        selections = [n.selection_set for n in nodes if n.selection_set is not None]
        completion.fields = self._collect(graphql_type, selections)
        return completion

    @staticmethod
    def _object(object_type: GraphQLObjectType) -> Completion:
        completion = Completion(OBJECT, object_type)
        if object_type.is_type_of is None:
            return completion
        definition = object_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if (
            isinstance(definition, StrawberryObjectDefinition)
            and definition.is_type_of is None
            and definition.concrete_of is None
        ):
            # Strawberry's own check for a type with interfaces: an isinstance.
            origins = (*(i.origin for i in definition.interfaces), definition.origin)
            completion.accepts = origins
        else:
            completion.check = object_type.is_type_of
        return completion

    def _collect(
        self, object_type: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> tuple[FieldPlan, ...]:
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._gather(object_type, selection_set, grouped, visited)
        plans = []
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if name == "__typename":
                definition = TypeNameMetaFieldDef
                leaf = Completion(LEAF, GraphQLString)
                plans.append(
                    FieldPlan(
                        object_type, key, name, nodes, definition, leaf, None, False, typename=True
                    )
                )
                continue
            if name.startswith("__"):
                raise Unsupported(f"the introspection field {name}")
            definition = object_type.fields[name]
            resolve = definition.resolve
            strawberry_field = definition.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            attribute = None
            if (
                getattr(resolve, "_is_default", False)  # Strawberry's field without a resolver
                and isinstance(strawberry_field, StrawberryField)
                and strawberry_field.default_resolver is getattr
            ):
                attribute = strawberry_field.python_name
            plans.append(
                FieldPlan(
                    object_type,
                    key,
                    name,
                    nodes,
                    definition,
                    self._completion(definition.type, nodes),
                    attribute,
                    bool(definition.args or nodes[0].arguments),
                )
            )
        return tuple(plans)

    def _gather(
        self,
        object_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """graphql-core's ``collect_fields`` for a concrete type, without directives."""
        for selection in selection_set.selections:
            if selection.directives:
                raise Unsupported("directives")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, object_type):
                    self._gather(object_type, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if name in visited or fragment is None:
                    continue
                visited.add(name)
                if fragment.variable_definitions:
                    raise Unsupported("fragment variables")
                if self._applies(fragment.type_condition, object_type):
                    self._gather(object_type, fragment.selection_set, grouped, visited)

    def _applies(self, condition: Any, object_type: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        condition_type = self.schema.get_type(condition.name.value)
        if condition_type is object_type:
            return True
        return is_abstract_type(condition_type) and self.schema.is_sub_type(
            condition_type, object_type
        )


def plan(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Plan:
    """The plan of the operation ``operation_name`` of ``document``; Unsupported when
    graphql-core must run it."""
    operation = None
    fragments = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = definition.name.value if definition.name else None
            if name == operation_name or (operation_name is None and operation is None):
                operation = definition
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    if operation is None:
        raise Unsupported("no such operation")
    if operation.directives:
        raise Unsupported("directives")
    return Plan(schema, operation, fragments)


class _Nulled(Exception):
    """A non-null field's value became null: its parent is null (graphql-core raises
    the located error itself; this carries it past ``except Exception`` handlers)."""

    def __init__(self, error: GraphQLError) -> None:
        self.error = error


# Where a composite value sits, to null it when a non-null field inside it fails after
# an await: (container, key, nullable, the container's place, the value, its path).
Place = tuple[Any, Any, bool, Any, Any, Path | None]


@dataclass(slots=True)
class _Pending:
    awaitable: Any
    plan: FieldPlan
    path: Path
    out: dict[str, Any]
    place: Place  # where ``out`` sits


class Execution:
    """One request: the plan executed on a graphql-core executor's variables and infos."""

    def __init__(self, plan: Plan, executor: Any) -> None:
        self.plan = plan
        self.executor = executor
        self.errors: list[GraphQLError] = []
        # Positions nulled by an error: errors from inside them are not reported, as
        # graphql-core's ``CollectedErrors`` does not report them.
        self._nulled: set[Path | None] = set()
        self._pending: list[_Pending] = []
        self._futures: set[asyncio.Future[Any]] = set()  # the pending fields, awaited
        self._done: asyncio.Future[None]

    async def run(self) -> dict[str, Any] | None:
        root = self.plan.root
        data: dict[str, Any] = {}
        holder = {"data": data}
        try:
            place: Place = (holder, "data", True, None, data, None)
            self._fields(root, root.fields, self.executor.root_value, None, data, place)
        except _Nulled as nulled:
            self._error(nulled.error, None)
            for item in self._pending:  # never to be read: not run at all
                if python_inspect.iscoroutine(item.awaitable):
                    item.awaitable.close()
            return None
        if self._pending:
            self._done = asyncio.get_running_loop().create_future()
            self._start()
            try:
                await self._done
            finally:
                for future in self._futures:
                    future.cancel()  # when the request is cancelled; a no-op once done
        return holder["data"]

    def _start(self) -> None:
        """Await the pending fields together (resolvers' loads batch as under
        graphql-core), each settled as it completes: errors come in their order."""
        batch, self._pending = self._pending, []
        for item in batch:
            future = asyncio.ensure_future(item.awaitable)
            self._futures.add(future)
            future.add_done_callback(partial(self._finished, item))

    def _finished(self, item: _Pending, future: asyncio.Future[Any]) -> None:
        self._futures.discard(future)
        if self._done.done():
            return
        try:
            self._settle(item, future.exception() or future.result())
        except BaseException as failure:  # cancelled, or a fault of this module's
            self._done.set_exception(failure)
            return
        if self._pending:
            self._start()
        if not self._futures:
            self._done.set_result(None)

    def _error(self, error: GraphQLError, position: Path | None) -> None:
        if not self._within_nulled(position):
            self._nulled.add(position)
            self.errors.append(error)

    def _within_nulled(self, position: Path | None) -> bool:
        nulled = self._nulled
        if not nulled:
            return False
        while position is not None:
            if position in nulled:
                return True
            position = position.prev
        return None in nulled

    def _settle(self, item: _Pending, result: Any) -> None:
        """An awaited field's value, completed where its object holds it."""
        if self._within_nulled(item.path):
            return  # its object was nulled meanwhile
        f = item.plan
        try:
            completed = self._complete(f.completion, f, result, item.path, item.out, item.place)
            item.out[f.key] = completed
            return
        except _Nulled as nulled:
            error = nulled.error
        except Exception as raw:
            error = located_error(raw, f.nodes, item.path.as_list())
        if not f.completion.non_null:
            item.out[f.key] = None
            self._error(error, item.path)
            return
        place: Place | None = item.place
        while place is not None:  # the nearest nullable place holding it becomes null
            container, key, nullable, parent, _value, position = place
            if nullable:
                container[key] = None
                self._error(error, position)
                return
            place = parent

    def _fields(
        self,
        completion: Completion,
        fields: tuple[FieldPlan, ...],
        source: Any,
        path: Path | None,
        out: dict[str, Any],
        place: Place,
    ) -> None:
        """``source``'s ``fields`` into ``out`` (which sits at ``place``)."""
        parent_type = completion.type
        value: Any
        for f in fields:
            try:
                if f.attribute is not None:
                    value = getattr(source, f.attribute)
                    t = f.leaf_type
                    if (
                        t is not None
                        and type(value) is t
                        and (t is not int or MIN_INT <= value <= MAX_INT)
                    ):
                        out[f.key] = value
                        continue
                    if f.completion.kind == LEAF:  # no path needed but for an error
                        out[f.key] = self._leaf(f.completion, f, value)
                        continue
                    field_path = Path(path, f.key, parent_type.name)
                    out[f.key] = self._complete(f.completion, f, value, field_path, out, place)
                    continue
                field_path = Path(path, f.key, parent_type.name)
                if f.typename:
                    out[f.key] = parent_type.name
                    continue
                info = self.executor.build_resolve_info(
                    f.definition, f.nodes, parent_type, field_path
                )
                args = (
                    get_argument_values(
                        f.definition,
                        f.nodes[0],
                        self.executor.variable_values,
                        None,
                        self.executor.hide_suggestions,
                    )
                    if f.has_args
                    else {}
                )
                value = f.definition.resolve(source, info, **args)  # type: ignore[misc]
                if optimized_is_awaitable(value):
                    out[f.key] = None
                    self._pending.append(_Pending(value, f, field_path, out, place))
                    continue
                out[f.key] = self._complete(f.completion, f, value, field_path, out, place)
            except _Nulled as nulled:
                if f.completion.non_null:
                    raise
                out[f.key] = None
                self._error(nulled.error, Path(path, f.key, parent_type.name))
            except Exception as raw:
                field_path = Path(path, f.key, parent_type.name)
                error = located_error(raw, f.nodes, field_path.as_list())
                if f.completion.non_null:
                    raise _Nulled(error) from None
                out[f.key] = None
                self._error(error, field_path)

    @staticmethod
    def _leaf(completion: Completion, f: FieldPlan, value: Any) -> Any:
        """A scalar or enum value for the response (graphql-core's ``complete_leaf_value``)."""
        if isinstance(value, Exception):
            raise value
        if value is None:
            if completion.non_null:
                raise TypeError(
                    f"Cannot return null for non-nullable field {f.parent.name}.{f.name}."
                )
            return None
        t = completion.python_type
        if t is not None and type(value) is t and (t is not int or MIN_INT <= value <= MAX_INT):
            return value
        names = completion.names
        if names is not None and (name := names.get(value)) is not None:
            return name
        coerced = completion.type.coerce_output_value(value)
        if coerced is None or coerced is Undefined:
            raise TypeError(
                f"Expected `{inspect(completion.type)}.coerce_output_value("
                f"{inspect(value)})` to return non-nullable value, returned:"
                f" {inspect(coerced)}"
            )
        return coerced

    def _complete(
        self,
        completion: Completion,
        f: FieldPlan,
        value: Any,
        path: Path,
        container: Any,
        place: Place,
    ) -> Any:
        """``value`` completed as ``completion`` says, to be put in ``container`` (at
        ``path.key``), which sits at ``place``; raises on an error (located by the
        caller) or ``_Nulled`` when a non-null field inside became null."""
        kind = completion.kind
        if kind == LEAF or value is None or isinstance(value, Exception):
            return self._leaf(completion, f, value)  # (null and errors: as for a leaf)
        at = (container, path.key, not completion.non_null, place)
        if kind == LIST:
            return self._list(completion, f, value, path, at)
        return self._object(completion, f, value, path, at)

    def _list(
        self, completion: Completion, f: FieldPlan, value: Any, path: Path, at: Any
    ) -> list[Any]:
        """``value`` as the list ``completion`` says; ``at``: where it will sit, but for
        the list itself (container, key, nullable, the container's place)."""
        if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{f.parent.name}.{f.name}'."
            )
        item = completion.inner
        assert item is not None
        items: list[Any] = []
        here: Place = (*at, items, path)
        item_nullable = not item.non_null
        for index, element in enumerate(value):
            item_path = path.add_key(index, None)
            try:
                items.append(self._complete(item, f, element, item_path, items, here))
            except _Nulled as nulled:
                if not item_nullable:
                    raise
                items.append(None)
                self._error(nulled.error, item_path)
            except Exception as raw:
                error = located_error(raw, f.nodes, item_path.as_list())
                if not item_nullable:
                    raise _Nulled(error) from None
                items.append(None)
                self._error(error, item_path)
        return items

    def _object(
        self, completion: Completion, f: FieldPlan, value: Any, path: Path, at: Any
    ) -> dict[str, Any]:
        """``value`` as the object ``completion`` says; ``at`` as for ``_list``."""
        if completion.accepts is not None:
            if not isinstance(value, completion.accepts):
                raise GraphQLError(
                    f"Expected value of type '{completion.type}' but got: {inspect(value)}.",
                    f.nodes,
                )
        elif completion.check is not None:
            info = self.executor.build_resolve_info(f.definition, f.nodes, f.parent, path)
            if not completion.check(value, info):
                raise GraphQLError(
                    f"Expected value of type '{completion.type}' but got: {inspect(value)}.",
                    f.nodes,
                )
        out: dict[str, Any] = {}
        self._fields(completion, completion.fields, value, path, out, (*at, out, path))
        return out
