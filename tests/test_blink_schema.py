"""Every operation the Blink client sends is valid against Blink's public schema and uses
nothing deprecated. The schema is reference data beside the repository (../shared/blink)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from graphql import (
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    parse,
    validate,
    visit,
)

from service.blink import OPERATION_NAMES, load_operations

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "blink" / "public-schema.graphql"


@cache
def blink_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))


class DeprecatedUsageCollector(Visitor):
    """Collects every deprecated field, argument and enum value a document uses."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found: list[str] = []

    def enter_field(self, node, *_args):
        field = self.type_info.get_field_def()
        parent = self.type_info.get_parent_type()
        if field is not None and field.deprecation_reason:
            self.found.append(f"field {parent}.{node.name.value}: {field.deprecation_reason}")

    def enter_argument(self, node, *_args):
        argument = self.type_info.get_argument()
        if argument is not None and argument.deprecation_reason:
            self.found.append(f"argument {node.name.value}: {argument.deprecation_reason}")

    def enter_enum_value(self, node, *_args):
        value = self.type_info.get_enum_value()
        if value is not None and value.deprecation_reason:
            self.found.append(f"enum value {node.value}: {value.deprecation_reason}")


def deprecated_usages(schema: GraphQLSchema, document) -> list[str]:
    type_info = TypeInfo(schema)
    collector = DeprecatedUsageCollector(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    return collector.found


def test_operations_file_defines_exactly_the_operations_the_client_uses():
    source = resources.files("service.blink").joinpath("operations.graphql").read_text(encoding="utf-8")
    parsed_names = {
        definition.name.value
        for definition in parse(source).definitions
        if isinstance(definition, OperationDefinitionNode)
    }
    assert parsed_names == set(OPERATION_NAMES)
    # The client's own splitter must see the same operations as a real GraphQL parser.
    assert set(load_operations()) == parsed_names


@pytest.mark.parametrize("operation_name", sorted(OPERATION_NAMES))
def test_operation_is_one_named_operation_valid_against_blink_schema(operation_name):
    document = parse(load_operations()[operation_name])
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert [op.name.value for op in operations] == [operation_name]
    assert len(document.definitions) == 1
    errors = validate(blink_schema(), document)
    assert errors == [], [error.message for error in errors]


@pytest.mark.parametrize("operation_name", sorted(OPERATION_NAMES))
def test_operation_uses_no_deprecated_field_argument_or_enum_value(operation_name):
    document = parse(load_operations()[operation_name])
    assert deprecated_usages(blink_schema(), document) == []


def test_deprecation_check_detects_a_deprecated_field():
    # Guards the guard: the older status query and PublicWallet.walletCurrency are deprecated.
    document = parse(
        """
        query Old($input: LnInvoicePaymentStatusInput!, $username: Username!) {
          lnInvoicePaymentStatus(input: $input) { status }
          accountDefaultWallet(username: $username) { walletCurrency }
        }
        """
    )
    assert validate(blink_schema(), document) == []
    found = deprecated_usages(blink_schema(), document)
    assert any("lnInvoicePaymentStatus" in usage for usage in found)
    assert any("PublicWallet.walletCurrency" in usage for usage in found)


def test_validation_detects_a_field_blink_does_not_have():
    document = parse("query Bad { me { defaultAccount { noSuchField } } }")
    assert validate(blink_schema(), document) != []
