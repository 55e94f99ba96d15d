"""The `/graphql` endpoint: parse (cached), authenticate, apply faults, execute, answer like Blink."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    parse,
    validate,
)

from blinksim.faults import FaultBook
from blinksim.resolvers import PAYMENT_SEND, RequestContext
from blinksim.state import SimState

_DOCUMENT_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and either a JSON body (dict) or a plain text body."""

    status: int
    body: dict | str


@dataclass(frozen=True)
class PreparedDocument:
    document: DocumentNode | None
    errors: tuple[dict, ...]
    root_fields: dict[str | None, frozenset[str]]  # operation name (None: the only one) -> root fields
    subscriptions: frozenset[str | None]


def _error(message: str, code: str) -> dict:
    return {"message": message, "extensions": {"code": code}}


def _root_field_names(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    names: set[str] = set()
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names |= _root_field_names(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            names |= _root_field_names(fragments[selection.name.value].selection_set, fragments)
    return names


class GraphQLEndpoint:
    def __init__(
        self,
        schema: GraphQLSchema,
        state: SimState,
        faults: FaultBook,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._schema = schema
        self._state = state
        self._faults = faults
        self._sleep = sleep
        # Parsing and validating dominate the cost of a small query: do it once per distinct query text.
        self._prepare = lru_cache(maxsize=_DOCUMENT_CACHE_SIZE)(self._prepare_uncached)

    def _prepare_uncached(self, query: str) -> PreparedDocument:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return PreparedDocument(
                None, ({**exc.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}},), {}, frozenset()
            )
        errors = validate(self._schema, document)
        if errors:
            formatted = tuple(
                {**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for e in errors
            )
            return PreparedDocument(None, formatted, {}, frozenset())
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        root_fields: dict[str | None, frozenset[str]] = {}
        subscriptions: set[str | None] = set()
        for operation in operations:
            name = operation.name.value if operation.name else None
            root_fields[name] = frozenset(_root_field_names(operation.selection_set, fragments))
            if operation.operation == OperationType.SUBSCRIPTION:
                subscriptions.add(name)
        if len(operations) == 1:
            only = operations[0]
            root_fields[None] = root_fields[only.name.value if only.name else None]
            if only.operation == OperationType.SUBSCRIPTION:
                subscriptions.add(None)
        return PreparedDocument(document, (), root_fields, frozenset(subscriptions))

    def handle(self, payload: object, api_key: str | None) -> Answer:
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return Answer(
                400, {"errors": [_error("POST body must be JSON with a 'query' string", "BAD_REQUEST")]}
            )
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return Answer(400, {"errors": [_error("'variables' must be an object", "BAD_REQUEST")]})
        if operation_name is not None and not isinstance(operation_name, str):
            return Answer(400, {"errors": [_error("'operationName' must be a string", "BAD_REQUEST")]})

        prepared = self._prepare(payload["query"])
        if prepared.document is None:
            return Answer(400, {"errors": list(prepared.errors)})
        if operation_name in prepared.subscriptions:
            return Answer(400, {"errors": [_error("Subscriptions need a websocket", "BAD_REQUEST")]})

        account = None
        if api_key:
            account = self._state.account_by_key(api_key)
            if account is None:
                # Blink's gateway rejects an unknown key before GraphQL runs.
                return Answer(401, {"errors": [_error("Not authenticated", "NOT_AUTHENTICATED")]})

        operations = prepared.root_fields.get(operation_name, frozenset())
        hits = self._faults.take(operations)
        for fault in hits:
            if fault.mode == "delay" or (fault.mode == "pending" and PAYMENT_SEND not in operations):
                self._sleep(fault.delay_ms / 1000)
        for fault in hits:
            if fault.mode == "error" and fault.http_status is not None:
                return Answer(
                    fault.http_status, f"<html><body><h1>{fault.http_status}</h1>simulated</body></html>"
                )

        context = RequestContext(state=self._state, account=account, faults=hits)
        result = execute(
            self._schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
        )
        for fault in hits:
            if fault.mode == "timeout":
                # The operation is done; the answer is held so the client gives up without knowing.
                self._sleep(fault.delay_ms / 1000)
        return Answer(200, result.formatted)
