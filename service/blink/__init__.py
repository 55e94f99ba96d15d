"""The Blink GraphQL client: typed calls, typed results, typed errors."""

from .client import OPERATION_NAMES, BlinkClient, load_operations, outcome_of
from .errors import (
    BlinkError,
    BlinkForbidden,
    BlinkRejected,
    BlinkTimeout,
    BlinkUnauthorized,
    BlinkUnavailable,
)
from .types import (
    InvoiceStatus,
    PaymentStatus,
    TxDirection,
    TxStatus,
    WalletCurrency,
    send_outcome,
)

__all__ = [
    "OPERATION_NAMES",
    "BlinkClient",
    "BlinkError",
    "BlinkForbidden",
    "BlinkRejected",
    "BlinkTimeout",
    "BlinkUnauthorized",
    "BlinkUnavailable",
    "InvoiceStatus",
    "PaymentStatus",
    "TxDirection",
    "TxStatus",
    "WalletCurrency",
    "load_operations",
    "outcome_of",
    "send_outcome",
]
