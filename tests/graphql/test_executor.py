"""The admitted queries' executor (``app/graphql/executor.py``) answers what graphql-core
answers: the same data, the same errors at the same paths, for queries written here to
reach every branch (null propagation in objects and lists, sync and async, aliases,
fragments, arguments) and for queries hypothesis-graphql generates over the same schema."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast

import hypothesis_graphql
import pytest
import strawberry
from graphql import DocumentNode, GraphQLError, execute, parse, validate
from hypothesis import HealthCheck, given, settings
from strawberry.dataloader import DataLoader
from strawberry.execution import optimized_is_awaitable

from app.graphql.executor import Execution, Unsupported, plan
from app.graphql.scalars import SCALARS, Credits, Decimal

# graphql-core leaves the awaitables under a root it nulls un-awaited (its own and the
# resolvers'), which the interpreter reports as it collects them: let go in this module
# (each test collects them before it ends), and checked for the plan alone in
# ``test_the_plan_awaits_or_closes_every_awaitable``.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    """graphql-core's leftovers collected as each test ends, under this module's filter
    (left to a later module's test, they would fail it)."""
    yield
    gc.collect()


WHEN = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


@strawberry.enum
class Color(Enum):
    RED = "red"
    GREEN = "green"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leaf(Named):
    count: int
    color: Color
    maybe: str | None
    tags: list[str]
    when: datetime
    credits: Credits
    usd: Decimal
    too_big: int  # past 32 bits: graphql-core refuses it

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError(f"{self.name} fails")

    @strawberry.field
    def fails_hard(self) -> str:
        raise ValueError(f"{self.name} fails hard")

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        return self.name.upper()

    @strawberry.field
    async def later_null(self) -> str:
        await asyncio.sleep(0)
        return cast(str, None)

    @strawberry.field
    async def later_fails(self) -> str | None:
        raise RuntimeError(f"{self.name} fails later")

    @strawberry.field
    def scaled(self, factor: int = 2) -> int:
        return self.count * factor

    @strawberry.field(graphql_type=str)
    def loaded(self, info: strawberry.Info) -> Awaitable[str]:
        """A DataLoader's future from a sync resolver, as the app's relations do."""
        loader: DataLoader[str, str] = info.context["names"]
        return loader.load(self.name)


def leaf(name: str, count: int = 1) -> Leaf:
    return Leaf(
        name=name,
        count=count,
        color=Color.GREEN if count % 2 else Color.RED,
        maybe=None if count % 3 == 0 else f"maybe {name}",
        tags=[name, "x"],
        when=WHEN,
        credits=Credits(count * 1_000_000),
        usd=Decimal(f"{count}.000000"),
        too_big=2**40 if count == 4 else count,
    )


@strawberry.type
class Box:
    label: str
    leaves: list[Leaf]
    gaps: list[Leaf | None]
    child: Box | None = None

    @strawberry.field
    def strict(self) -> list[Leaf]:
        """A list of non-null items with a null among them."""
        return cast(list[Leaf], [leaf("s1"), None])

    @strawberry.field
    async def later_leaves(self) -> list[Leaf]:
        await asyncio.sleep(0)
        return [leaf(f"{self.label}-later-{n}", n) for n in range(1, 4)]

    @strawberry.field
    def not_a_list(self) -> list[str] | None:
        return cast(list[str], 7)

    @strawberry.field
    def wrong_type(self) -> Leaf | None:
        return cast(Leaf, "not a leaf")


def box(label: str, depth: int = 1) -> Box:
    return Box(
        label=label,
        leaves=[leaf(f"{label}{n}", n) for n in range(1, 6)],
        gaps=[leaf(f"{label}-g1"), None, leaf(f"{label}-g3", 3)],
        child=box(f"{label}.c", depth - 1) if depth else None,
    )


@strawberry.type
class Query:
    @strawberry.field
    def box(self, label: str = "b") -> Box:
        return box(label)

    @strawberry.field
    async def later_box(self) -> Box | None:
        await asyncio.sleep(0)
        return box("later")

    @strawberry.field
    def boxes(self, count: int = 2) -> list[Box]:
        return [box(f"b{n}") for n in range(min(count, 4))]  # generated counts are large

    @strawberry.field
    def hard(self) -> Box:
        raise ValueError("the root's non-null field fails")

    @strawberry.field
    def named(self) -> Named:
        return leaf("abstract")


schema = strawberry.Schema(Query, scalar_overrides=SCALARS, types=[Leaf])


def context() -> dict[str, Any]:
    async def names(keys: list[str]) -> list[str]:
        return [f"loaded {key}" for key in keys]

    return {"names": DataLoader(load_fn=names)}


def errors_of(errors: list[GraphQLError] | None) -> list[tuple[str, tuple[Any, ...]]]:
    return sorted((e.message, tuple(e.path or ())) for e in errors or ())


def visible(errors: list[tuple[str, tuple[Any, ...]]], data: Any) -> list[Any]:
    """The errors whose field is a null in ``data`` with every parent present. Which
    errors from inside a nulled object are reported depends on what finished before it
    was nulled, on either executor (graphql-core's ``CollectedErrors``)."""
    shown = []
    for message, path in errors:
        value = data
        for key in path:
            if value is None:
                break
            value = value[key]
        else:
            if value is None:
                shown.append((message, path))
    return shown


async def graphql_core(document: DocumentNode, variables: dict[str, Any] | None) -> Any:
    result = execute(
        schema._schema,
        document,
        context_value=context(),
        variable_values=variables,
        is_awaitable=cast(Any, optimized_is_awaitable),
        executor_class=schema.execution_context_class,
    )
    return await result if optimized_is_awaitable(result) else result


async def both(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Run ``query`` on graphql-core and on the plan; they must agree. The data."""
    document = parse(query)
    assert not validate(schema._schema, document)
    with warnings.catch_warnings():
        # graphql-core leaves the awaitables of a root it nulls un-awaited (ours closes
        # them, and any it leaves would fail the test).
        warnings.simplefilter("ignore", RuntimeWarning)
        result = await graphql_core(document, variables)
        expected_data, expected_errors = result.data, errors_of(result.errors)
        del result  # its errors' tracebacks hold the awaitables
        gc.collect()
    executor = schema.execution_context_class.build(
        schema._schema,
        document,
        context_value=context(),
        raw_variable_values=variables,
        is_awaitable=cast(Any, optimized_is_awaitable),
    )
    assert not isinstance(executor, list)
    execution = Execution(plan(schema._schema, document, None), executor)
    data = await execution.run()
    assert data == expected_data
    errors = errors_of(execution.errors)
    assert visible(errors, data) == visible(expected_errors, expected_data)
    assert bool(errors) == bool(expected_errors)
    return data


LEAF_FIELDS = "name count color maybe tags when credits usd scaled(factor: 3) loaded"


def check(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``both`` in a loop of its own; graphql-core's leftovers (above) collected before
    the test ends, so that this module's filter applies to them."""
    data = asyncio.run(both(query, variables))
    gc.collect()
    return data


def test_plain_fields_lists_and_scalars() -> None:
    data = check(f"{{ box {{ label leaves {{ {LEAF_FIELDS} }} child {{ label }} }} }}")
    assert data is not None
    first = data["box"]["leaves"][0]
    assert first == {
        "name": "b1",
        "count": 1,
        "color": "GREEN",
        "maybe": "maybe b1",
        "tags": ["b1", "x"],
        "when": WHEN.isoformat(),
        "credits": "1000000",
        "usd": "1.000000",
        "scaled": 3,
        "loaded": "loaded b1",
    }


def test_aliases_fragments_and_typename() -> None:
    check(
        """
        query ($f: Int!) {
          first: box(label: "one") { ...B }
          second: box { __typename leaves { ... on Leaf { a: scaled(factor: $f) b: scaled } } }
        }
        fragment B on Box { label leaves { ...L ... on Named { name } } gaps { ...L } }
        fragment L on Leaf { __typename name count }
        """,
        {"f": 5},
    )


@pytest.mark.parametrize(
    "selection",
    [
        "box { leaves { fails } }",  # nullable: null there, an error each
        "box { leaves { name failsHard } }",  # non-null: the item's list item is null...
        "box { gaps { failsHard } }",  # ...in a list of nullable items: that item
        "box { child { leaves { failsHard } } }",  # a non-null list: up to the child
        "box { strict { name } }",  # a null in a list of non-null items
        "box { leaves { tooBig } }",  # an Int past 32 bits
        "box { notAList }",
        "box { wrongType { name } }",
        "hard { label }",  # the root becomes null
        "box { leaves { later laterFails } }",  # async, nullable
        "box { leaves { laterNull } }",  # async, non-null: the item's object is null
        "laterBox { laterLeaves { later laterNull } }",
        "box { child { laterLeaves { laterNull } } leaves { failsHard } }",
        "boxes(count: 3) { label gaps { later laterNull name } }",
    ],
)
def test_errors_and_null_propagation(selection: str) -> None:
    check(f"{{ {selection} }}")


@pytest.mark.parametrize(
    "query",
    [
        "{ box { child { laterLeaves { laterNull } } leaves { failsHard } } }",
        "{ box { leaves { laterNull } } laterBox { laterLeaves { later } } }",
        "{ hard { label } laterBox { leaves { later } } }",
    ],
)
def test_the_plan_awaits_or_closes_every_awaitable(query: str) -> None:
    """Where its root is nulled, with awaitables pending: none is left un-awaited (the
    interpreter warns of those as it collects them)."""
    document = parse(query)

    async def run() -> Any:
        executor = schema.execution_context_class.build(
            schema._schema,
            document,
            context_value=context(),
            is_awaitable=cast(Any, optimized_is_awaitable),
        )
        assert not isinstance(executor, list)
        return await Execution(plan(schema._schema, document, None), executor).run()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(run()) is None
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_abstract_fields_are_left_to_graphql_core() -> None:
    document = parse("{ named { name } }")
    with pytest.raises(Unsupported):
        plan(schema._schema, document, None)
    with pytest.raises(Unsupported):
        plan(schema._schema, parse("{ box { label @include(if: true) } }"), None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=hypothesis_graphql.queries(schema.as_str(), fields=["box", "boxes", "laterBox"]))
def test_generated_queries(query: str) -> None:
    """Whatever a client may send over these fields (aliases, arguments, nesting)."""
    try:
        plan(schema._schema, parse(query), None)
    except Unsupported:
        return
    check(query)
