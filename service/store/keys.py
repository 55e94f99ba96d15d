"""Every Redis key name the service writes, and every TTL (DESIGN 2: every key expires).

Key names are part of the contract with the deployed system: change them here only.
"""

from __future__ import annotations

import hashlib

# tip:{hash} lives as long as the invoice (Config.tip_ttl_seconds, default 24 h); when the
# hot copy is re-warmed after expiry (a late payment being forwarded) it gets at least this.
TIP_MIN_TTL_SECONDS = 300
PAYMENT_LOCK_TTL_SECONDS = 300
RECIPIENT_STATS_TTL_SECONDS = 3600
WALLET_OWNER_TTL_SECONDS = 600
RECIPIENT_WALLET_TTL_SECONDS = 600
MERCHANT_KEY_TTL_SECONDS = 600
# A merchant's split profiles: a change deletes the copy, so this bounds only a lost race.
SPLIT_PROFILES_TTL_SECONDS = 300
RATE_LIMIT_WINDOW_SECONDS = 60
# An upstream answer shared by concurrent and repeated callers (forward-with-tips floods), and
# the lock its first asker holds while asking.
SHARED_ANSWER_TTL_MS = 1500
SHARED_ANSWER_LOCK_MS = 2000
# Svix retries a delivery for about 28 hours (../shared/blink/README.md): remember ids longer.
WEBHOOK_DEDUP_TTL_SECONDS = 3 * 24 * 3600


def tip(payment_hash: str) -> str:
    """The hot copy of a split (no merchant key in any form)."""
    return f"tip:{payment_hash}"


def payment_lock(payment_hash: str) -> str:
    """SET NX fast path before the Postgres claim (the claim is the real guard)."""
    return f"lock:payment:{payment_hash}"


def rate_limit(scope: str, identity: str, window: int) -> str:
    """A per-window counter; window is the window's index (epoch seconds // window length)."""
    return f"ratelimit:{scope}:{identity}:{window}"


def recipient_stats(username: str) -> str:
    return f"stats:recipient:{username.lower()}"


def wallet_owner(fingerprint: str, wallet_id: str) -> str:
    """Remembers that the key with this fingerprint owns this wallet (create-invoice check)."""
    return f"wallet-owner:{fingerprint}:{wallet_id}"


def recipient_wallet(username: str) -> str:
    """A tip recipient's resolved BTC wallet id."""
    return f"recipient-wallet:{username.lower()}"


def merchant_key(fingerprint: str) -> str:
    """Remembers that Blink accepted the key with this fingerprint (split profiles)."""
    return f"merchant-key:{fingerprint}"


def split_profiles(fingerprint: str) -> str:
    """A merchant's split profiles, by its key's current fingerprint."""
    return f"profiles:{fingerprint}"


def svix_webhook(message_id: str) -> str:
    """A processed webhook delivery (Svix redelivers the same id)."""
    return f"webhook:svix:{message_id}"


def lnurl_pay_request(recipient: str) -> str:
    """A recipient's last good LNURL pay request (positive answers only), by its normalised form."""
    digest = hashlib.sha256(recipient.encode("utf-8")).hexdigest()
    return f"lnurl:payreq:{digest}"


def shared_answer(question: str, subject: str) -> str:
    """Blink's latest answer to question about subject (e.g. invoice-status, a payment hash)."""
    return f"answer:{question}:{subject}"


def shared_answer_lock(question: str, subject: str) -> str:
    """Held (SET NX) by the one caller asking Blink question about subject right now."""
    return f"answer-lock:{question}:{subject}"
