"""forward-payment, the POS page's fallback: only the merchant that created a split may forward it."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from service.domain.errors import MerchantKeyNotApplicable, MerchantMismatch, SplitNotFound
from service.payments.forwarding import Forwarder, ForwardOutcome
from service.payments.inputs import ForwardPaymentRequest
from service.payments.ports import ForwardingStore


def forward_for_merchant(
    forwarder: Forwarder,
    store: ForwardingStore,
    key_matches: Callable[[str, str], bool],
    request: ForwardPaymentRequest,
) -> ForwardOutcome:
    """Forward the split if the wallet and the key's fingerprint are the stored merchant's.

    key_matches(api_key, stored_fingerprint) is Fingerprints.matches: every configured secret.
    """
    split = store.get_fresh(request.payment_hash)
    if split is None:
        raise SplitNotFound("No invoice with this payment hash was created here.")
    if split.merchant_key_fingerprint is None or split.merchant_wallet_id is None:
        raise MerchantKeyNotApplicable(
            "This sale pays its merchant at a Lightning Address and has no merchant key: "
            "forward it with forward-with-tips (the worker also forwards it)."
        )
    # Both compared in full, so the answer's timing tells nothing about which one differed.
    same_wallet = _same(split.merchant_wallet_id, request.merchant_wallet_id)
    same_key = key_matches(request.merchant_api_key, split.merchant_key_fingerprint)
    if not (same_wallet and same_key):
        raise MerchantMismatch("This payment belongs to another merchant wallet or key.")
    return forwarder.forward(request.payment_hash, source="forward-payment")


def _same(stored: str, given: str) -> bool:
    # compare_digest takes str only when ASCII: any wallet id a client sends is compared as bytes.
    return hmac.compare_digest(stored.encode(), given.encode())
