"""schema.graphql is the exported schema, and the dashboards' operations validate against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

from app.graphql.schema import schema

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "frontend-examples" / "operations" / "dashboard.graphql"

# Contract operations whose domain lands with a later issue; each must still fail to
# validate, so this list shrinks as they are built and cannot go stale.
PENDING = {}


def test_schema_graphql_is_the_exported_schema() -> None:
    exported = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert exported == schema.as_str() + "\n", "run: creditgraph schema -o schema.graphql"


def _operations() -> list[tuple[str, DocumentNode]]:
    """Each contract operation as its own document, with the fragments it may use."""
    document = parse(CONTRACT.read_text(encoding="utf-8"))
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    result = []
    for operation in operations:
        assert operation.name is not None
        used = [f for f in fragments if f"...{f.name.value}" in _text(operation)]
        result.append((operation.name.value, DocumentNode(definitions=(operation, *used))))
    return result


def _text(node: OperationDefinitionNode) -> str:
    assert node.loc is not None
    return node.loc.source.body[node.loc.start : node.loc.end].replace(" ", "")


OPERATIONS = dict(_operations())


def test_pending_names_are_contract_operations() -> None:
    assert set(PENDING) <= set(OPERATIONS)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_contract_operation_validates(name: str) -> None:
    exported = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    errors = validate(exported, OPERATIONS[name])
    if name in PENDING:
        assert errors, f"{name} now validates: remove it from PENDING"
    else:
        assert errors == [], f"{name}: {[e.message for e in errors]}"


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    """GraphiQL is where frontend developers read the API: nothing may be left blank."""
    builtin = {"String", "Int", "Boolean", "ID", "Float"}
    missing = []
    for name, kind in schema._schema.type_map.items():
        if name.startswith("__") or name in builtin:
            continue
        if not kind.description:
            missing.append(name)
        for field_name, field in getattr(kind, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({argument})")
        for value_name, value in getattr(kind, "values", {}).items():
            if not value.description:
                missing.append(f"{name}.{value_name}")
    assert missing == []
