"""BlinkClient: the service's only way to talk to Blink's GraphQL API.

One urllib3 connection pool shared by all threads; every request carries the connect and
read timeouts. urllib3 rather than requests: a call through a requests Session cost about
0.5 ms of CPU against 0.3 ms here (request preparation, settings merging, cookie jars), and a
sale makes eight of them. Every failure becomes a typed ``BlinkError``
(see errors.py), and no message, log record or exception carries an API key.

Error mapping:
- network error, HTTP 5xx or 429, malformed/non-JSON answer -> ``BlinkUnavailable`` (retryable);
  no answer in time -> ``BlinkTimeout`` (a ``BlinkUnavailable``: a mutation may have happened).
- HTTP 401/403, or top-level GraphQL errors about authentication -> ``BlinkUnauthorized``
  (``BlinkForbidden`` when the key is known but its scopes do not allow the operation).
- top-level GraphQL errors saying rate-limited or internal error -> ``BlinkUnavailable``;
  any other top-level error -> ``BlinkRejected`` (code from ``extensions.code``, snake_case).
- payload ``errors`` of a mutation, or payment status FAILURE -> ``BlinkRejected``.

Only reads (accountDefaultWallet, lnInvoicePaymentStatusByHash, me, transactionsByPaymentHash) and
the fee probe (it moves no money) are retried, and only on ``BlinkUnavailable``; other mutations
are sent once and the caller decides (a payment retry must reuse the same invoice, which Blink
answers ALREADY_PAID when already paid).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
import urllib.request
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from .answers import decode_answer, invoice_of, malformed, object_field, raise_payload_errors, string_field
from .errors import BlinkError, BlinkRejected, BlinkTimeout, BlinkUnauthorized, BlinkUnavailable
from .types import (
    Invoice,
    InvoiceStatus,
    PaymentStatus,
    Transaction,
    TxDirection,
    TxStatus,
    Wallet,
    WalletCurrency,
)

logger = logging.getLogger(__name__)

Observer = Callable[[str, float, str], None]

DEFAULT_USER_AGENT = "blinkpos-payment-service/1.0"
DEFAULT_POOL_SIZE = 64

OP_CREATE_INVOICE = "LnInvoiceCreate"
OP_CREATE_INVOICE_FOR_RECIPIENT = "LnInvoiceCreateOnBehalfOfRecipient"
OP_DEFAULT_WALLET = "AccountDefaultWallet"
OP_PAY_INVOICE = "LnInvoicePaymentSend"
OP_INVOICE_STATUS = "LnInvoicePaymentStatusByHash"
OP_WALLETS = "Wallets"
OP_FEE_PROBE = "LnInvoiceFeeProbe"
OP_TRANSACTIONS_BY_HASH = "TransactionsByPaymentHash"

# Every operation the client sends; the schema test checks the .graphql file holds exactly these.
OPERATION_NAMES: frozenset[str] = frozenset(
    {
        OP_CREATE_INVOICE,
        OP_CREATE_INVOICE_FOR_RECIPIENT,
        OP_DEFAULT_WALLET,
        OP_PAY_INVOICE,
        OP_INVOICE_STATUS,
        OP_WALLETS,
        OP_FEE_PROBE,
        OP_TRANSACTIONS_BY_HASH,
    }
)

# Outcomes reported to the observer (and used as metric labels).
OUTCOME_SUCCESS = "success"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_UNAVAILABLE = "unavailable"
OUTCOME_REJECTED = "rejected"
OUTCOME_UNAUTHORIZED = "unauthorized"

_OPERATION_START = re.compile(r"^(query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


@functools.cache
def load_operations() -> dict[str, str]:
    """Operation name -> GraphQL text, read once from operations.graphql (comments dropped)."""
    source = resources.files(__package__).joinpath("operations.graphql").read_text(encoding="utf-8")
    operations: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        start = _OPERATION_START.match(line)
        if start:
            name = start.group(2)
            if name in operations:
                raise ValueError(f"operation {name} is defined twice in operations.graphql")
            current = operations[name] = []
        if current is None:
            raise ValueError("operations.graphql has text before its first operation")
        current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in operations.items()}


def connection_pool(pool_size: int, api_url: str) -> urllib3.PoolManager:
    """The pool for `api_url`: through the environment's proxy for it, if any (no_proxy
    honoured), verifying TLS against REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE or certifi's bundle."""
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    options: dict[str, Any] = {"num_pools": 4, "maxsize": pool_size, "ca_certs": ca_bundle}
    parts = urlsplit(api_url)
    proxy = None
    if not urllib.request.proxy_bypass(parts.hostname or ""):
        proxy = urllib.request.getproxies().get(parts.scheme)
    return urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)


def outcome_of(error: BlinkError) -> str:
    """A bounded label for an error: the metrics' outcome and leg-failure reason."""
    if isinstance(error, BlinkTimeout):
        return OUTCOME_TIMEOUT
    if isinstance(error, BlinkUnavailable):
        return OUTCOME_UNAVAILABLE
    if isinstance(error, BlinkUnauthorized):
        return OUTCOME_UNAUTHORIZED
    return OUTCOME_REJECTED


class BlinkClient:
    """Typed calls to Blink. Thread-safe: share one instance per process."""

    def __init__(
        self,
        api_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool: urllib3.PoolManager | None = None,
        observer: Observer | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        read_attempts: int = 3,
        retry_backoff_seconds: float = 0.2,
    ) -> None:
        if read_attempts < 1:
            raise ValueError("read_attempts must be at least 1")
        self._api_url = api_url
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._timeout_text = f"({connect_timeout}, {read_timeout})"
        self._owns_pool = pool is None
        self._pool = pool if pool is not None else connection_pool(DEFAULT_POOL_SIZE, api_url)
        self._observer = observer
        self._user_agent = user_agent
        self._read_attempts = read_attempts
        self._retry_backoff = retry_backoff_seconds
        self._operations = load_operations()

    def close(self) -> None:
        """Closes the pooled connections (only when the client created the pool)."""
        if self._owns_pool:
            self._pool.clear()

    def __enter__(self) -> BlinkClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- operations -------------------------------------------------------------------------

    def create_invoice(
        self,
        api_key: str,
        wallet_id: str,
        sats: int,
        memo: str | None,
        expires_in_minutes: int | None = None,
    ) -> Invoice:
        """A BOLT11 invoice for ``sats`` on ``wallet_id``, a BTC wallet of ``api_key``'s account."""
        _require_positive_sats(sats)
        request: dict[str, Any] = {"walletId": wallet_id, "amount": sats}
        _put_optional(request, memo=memo, expiresIn=expires_in_minutes)
        data = self._request(OP_CREATE_INVOICE, {"input": request}, api_key)
        payload = object_field(data, "lnInvoiceCreate", OP_CREATE_INVOICE)
        raise_payload_errors(payload, OP_CREATE_INVOICE, (api_key,))
        return invoice_of(payload, sats, OP_CREATE_INVOICE)

    def create_invoice_for_recipient(
        self,
        recipient_wallet_id: str,
        sats: int,
        memo: str | None,
        expires_in_minutes: int | None = None,
    ) -> Invoice:
        """An invoice crediting any account's BTC wallet (a tip recipient); needs no API key."""
        _require_positive_sats(sats)
        request: dict[str, Any] = {"recipientWalletId": recipient_wallet_id, "amount": sats}
        _put_optional(request, memo=memo, expiresIn=expires_in_minutes)
        data = self._request(OP_CREATE_INVOICE_FOR_RECIPIENT, {"input": request}, None)
        payload = object_field(data, "lnInvoiceCreateOnBehalfOfRecipient", OP_CREATE_INVOICE_FOR_RECIPIENT)
        raise_payload_errors(payload, OP_CREATE_INVOICE_FOR_RECIPIENT, ())
        return invoice_of(payload, sats, OP_CREATE_INVOICE_FOR_RECIPIENT)

    def default_btc_wallet(self, username: str) -> str:
        """The BTC wallet id of ``username``.

        Raises ``BlinkRejected`` with code ``recipient_not_found`` when Blink refuses the username
        (the query is schema-checked, so a refusal can only concern the username), and
        ``recipient_wallet_not_btc`` if Blink ever answers a non-BTC wallet.
        """
        try:
            data = self._read(OP_DEFAULT_WALLET, {"username": username}, None)
        except BlinkRejected as exc:
            raise BlinkRejected(
                "recipient_not_found",
                f"no Blink account for username {username!r}",
                operation=OP_DEFAULT_WALLET,
            ) from exc
        wallet = object_field(data, "accountDefaultWallet", OP_DEFAULT_WALLET)
        wallet_id = string_field(wallet, "id", OP_DEFAULT_WALLET)
        currency = string_field(wallet, "currency", OP_DEFAULT_WALLET)
        if currency != WalletCurrency.BTC:
            raise BlinkRejected(
                "recipient_wallet_not_btc",
                f"default wallet of {username!r} is {currency}, not BTC",
                operation=OP_DEFAULT_WALLET,
            )
        return wallet_id

    def pay_invoice(
        self, api_key: str, wallet_id: str, payment_request: str, memo: str | None = None
    ) -> PaymentStatus:
        """Pays ``payment_request`` from ``wallet_id``; sent once, never retried here.

        SUCCESS, PENDING and ALREADY_PAID are returned; FAILURE or payload errors raise
        ``BlinkRejected``. A ``BlinkUnavailable``/``BlinkTimeout`` leaves the outcome unknown:
        paying the same invoice again is safe.
        """
        request: dict[str, Any] = {"walletId": wallet_id, "paymentRequest": payment_request}
        _put_optional(request, memo=memo)
        data = self._request(OP_PAY_INVOICE, {"input": request}, api_key)
        payload = object_field(data, "lnInvoicePaymentSend", OP_PAY_INVOICE)
        # Errors win over a status: reporting a failure for a payment that went through is
        # recoverable (the retry answers ALREADY_PAID); the reverse would lose a leg.
        raise_payload_errors(payload, OP_PAY_INVOICE, (api_key,))
        status = payload.get("status")
        if status == "FAILURE":
            raise BlinkRejected(
                "payment_failed", "Blink reported the payment as FAILURE", operation=OP_PAY_INVOICE
            )
        try:
            return PaymentStatus(status)
        except ValueError:
            raise malformed(OP_PAY_INVOICE, f"unknown payment status {status!r}") from None

    def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        """PENDING, PAID or EXPIRED for the invoice with ``payment_hash``."""
        data = self._read(OP_INVOICE_STATUS, {"input": {"paymentHash": payment_hash}}, None)
        payload = object_field(data, "lnInvoicePaymentStatusByHash", OP_INVOICE_STATUS)
        status = payload.get("status")
        try:
            return InvoiceStatus(status)
        except ValueError:
            raise malformed(OP_INVOICE_STATUS, f"unknown invoice status {status!r}") from None

    def wallets(self, api_key: str) -> list[Wallet]:
        """The wallets of the account that owns ``api_key``."""
        account = _default_account(self._read(OP_WALLETS, {}, api_key), OP_WALLETS)
        entries = account.get("wallets")
        if not isinstance(entries, list):
            raise malformed(OP_WALLETS, "wallets is not a list")
        wallets = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise malformed(OP_WALLETS, "a wallet is not an object")
            wallets.append(
                Wallet(
                    id=string_field(entry, "id", OP_WALLETS),
                    currency=string_field(entry, "walletCurrency", OP_WALLETS),
                )
            )
        return wallets

    def fee_probe(self, api_key: str, wallet_id: str, payment_request: str) -> int:
        """The routing fee in sats Blink expects for paying ``payment_request`` from ``wallet_id``
        (0 inside Blink). It moves no money, so it is retried like a read."""
        variables = {"input": {"walletId": wallet_id, "paymentRequest": payment_request}}
        data = self._read(OP_FEE_PROBE, variables, api_key)
        payload = object_field(data, "lnInvoiceFeeProbe", OP_FEE_PROBE)
        raise_payload_errors(payload, OP_FEE_PROBE, (api_key,))
        amount = payload.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise malformed(OP_FEE_PROBE, "amount is not a non-negative integer")
        return amount

    def transactions_by_payment_hash(
        self, api_key: str, wallet_id: str, payment_hash: str
    ) -> list[Transaction]:
        """``wallet_id``'s transactions for ``payment_hash``: how a payment that answered PENDING or
        timed out ended (see types.send_outcome). An empty list: the wallet never sent it."""
        variables = {"walletId": wallet_id, "paymentHash": payment_hash}
        data = self._read(OP_TRANSACTIONS_BY_HASH, variables, api_key)
        account = _default_account(data, OP_TRANSACTIONS_BY_HASH)
        wallet = object_field(account, "walletById", OP_TRANSACTIONS_BY_HASH)
        entries = wallet.get("transactionsByPaymentHash")
        if not isinstance(entries, list):
            raise malformed(OP_TRANSACTIONS_BY_HASH, "transactionsByPaymentHash is not a list")
        return [_transaction(entry) for entry in entries]

    # ---- transport --------------------------------------------------------------------------

    def _read(self, operation: str, variables: dict[str, Any], api_key: str | None) -> dict[str, Any]:
        """A read: retried a few times with a short exponential backoff on BlinkUnavailable."""
        for attempt in range(1, self._read_attempts + 1):
            try:
                return self._request(operation, variables, api_key)
            except BlinkUnavailable:
                if attempt == self._read_attempts:
                    raise
                time.sleep(self._retry_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the loop either returns or raises

    def _request(self, operation: str, variables: dict[str, Any], api_key: str | None) -> dict[str, Any]:
        """One HTTP round trip; reports to the observer and logs failures (without secrets)."""
        started = time.monotonic()
        outcome = OUTCOME_SUCCESS
        try:
            return self._send(operation, variables, api_key)
        except BlinkError as exc:
            outcome = outcome_of(exc)
            logger.warning(
                "blink_call_failed",
                extra={"blink_operation": operation, "outcome": outcome, "error_code": exc.code},
            )
            raise
        finally:
            if self._observer is not None:
                self._observer(operation, time.monotonic() - started, outcome)

    def _send(self, operation: str, variables: dict[str, Any], api_key: str | None) -> dict[str, Any]:
        headers = {"User-Agent": self._user_agent, "Accept": "application/json",
                   "Content-Type": "application/json"}
        if api_key:
            headers["X-API-KEY"] = api_key
        body = {"query": self._operations[operation], "variables": variables, "operationName": operation}
        # urllib3's exception is dropped ("from None"): nothing of it is needed beyond its class.
        try:
            response = self._pool.request(
                "POST", self._api_url, body=json.dumps(body).encode(), headers=headers,
                timeout=self._timeout, retries=False, redirect=False,
            )
        except NewConnectionError:  # urllib3 makes it a timeout subclass; it is a refusal
            raise BlinkUnavailable("cannot reach Blink (NewConnectionError)", code="network_error",
                                   operation=operation) from None
        except Urllib3Timeout:
            raise BlinkTimeout(
                f"no answer from Blink within {self._timeout_text} s", operation=operation
            ) from None
        except Urllib3Error as exc:
            raise BlinkUnavailable(
                f"cannot reach Blink ({type(exc).__name__})", code="network_error", operation=operation
            ) from None
        return decode_answer(response.status, response.data, operation, (api_key,) if api_key else ())


def _require_positive_sats(sats: int) -> None:
    # Blink rejects 0-sat invoices; a non-int here is a programming error, not a Blink answer.
    if not isinstance(sats, int) or isinstance(sats, bool) or sats <= 0:
        raise ValueError(f"sats must be a positive integer, got {sats!r}")


def _put_optional(target: dict[str, Any], **values: Any) -> None:
    for name, value in values.items():
        if value is not None:
            target[name] = value


def _default_account(data: dict[str, Any], operation: str) -> dict[str, Any]:
    """``me.defaultAccount`` of an answer; no ``me`` means Blink knows no user for the key."""
    me = data.get("me")
    if me is None:
        raise BlinkUnauthorized("Blink knows no user for this API key", operation=operation)
    if not isinstance(me, dict):
        raise malformed(operation, "me is not an object")
    return object_field(me, "defaultAccount", operation)


def _transaction(entry: Any) -> Transaction:
    operation = OP_TRANSACTIONS_BY_HASH
    if not isinstance(entry, dict):
        raise malformed(operation, "a transaction is not an object")
    amount, fee = entry.get("settlementAmount"), entry.get("settlementFee")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (amount, fee)):
        raise malformed(operation, "a transaction's amounts are not integers")
    if entry.get("settlementCurrency") != WalletCurrency.BTC:
        raise malformed(operation, "a transaction is not in sats")
    try:
        direction, status = TxDirection(entry.get("direction")), TxStatus(entry.get("status"))
    except ValueError:
        raise malformed(operation, "a transaction has an unknown direction or status") from None
    return Transaction(string_field(entry, "id", operation), direction, status, amount, fee)
