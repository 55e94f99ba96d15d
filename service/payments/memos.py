"""The memos written on forwarding invoices, kept within Blink's 639-byte ``Memo`` limit.

The merchant's invoice says what the sale was and who shared the tip; each tip invoice says
which part of the tip it is. Blink rejects a longer memo outright, so every memo is cut here,
on a character boundary and, where possible, not inside an accented letter, a flag or an
emoji sequence.
"""

import unicodedata
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

MAX_MEMO_BYTES = 639
MEMO_PREFIX = "BlinkPOS"
_ELLIPSIS = "\u2026"

_ZERO_WIDTH_JOINER = "\u200d"
_SATS_CURRENCIES = frozenset({"BTC", "SAT", "SATS"})
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3"}
# ISO 4217 currencies without minor units that a POS is likely to show.
_WHOLE_UNIT_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"})


def truncate_utf8(text: str, max_bytes: int = MAX_MEMO_BYTES) -> str:
    """The longest prefix of ``text`` that fits in ``max_bytes`` of UTF-8.

    Never splits a character; also steps back rather than separating a combining mark, a
    variation selector, a skin-tone modifier or a zero-width-joined emoji from its base, or
    one half of a flag from the other, unless a single such cluster is longer than the limit.
    Lone surrogates (which UTF-8 cannot carry) become U+FFFD, so the result always encodes.
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must not be negative")
    text = _without_surrogates(text)
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Decoding a byte prefix with "ignore" drops only a trailing partial character.
    cut = len(encoded[:max_bytes].decode("utf-8", "ignore"))
    cluster_cut = _step_back_to_cluster_start(text, cut)
    return text[: cluster_cut if cluster_cut > 0 else cut]


def merchant_memo(original_memo: str | None, tip_text: str | None, recipients: Sequence[str]) -> str:
    """``BlinkPOS: <memo>``, plus `` | <tip text> tip to alice, bob`` when the sale carried a tip.

    When it is too long the original memo is shortened (ending in an ellipsis) so the tip note
    still fits; only a tip note that alone exceeds the limit is itself cut.
    """
    memo = _without_surrogates((original_memo or "").strip())
    tip_text = _without_surrogates(tip_text) if tip_text else None
    recipients = [_without_surrogates(name) for name in recipients]
    head = f"{MEMO_PREFIX}: " if memo else MEMO_PREFIX
    tip_note = _tip_note(tip_text, recipients)
    whole = f"{head}{memo}{tip_note}"
    if _utf8_len(whole) <= MAX_MEMO_BYTES:
        return whole
    room_for_memo = MAX_MEMO_BYTES - _utf8_len(head) - _utf8_len(tip_note) - _utf8_len(_ELLIPSIS)
    if room_for_memo > 0:
        return f"{head}{truncate_utf8(memo, room_for_memo)}{_ELLIPSIS}{tip_note}"
    return truncate_utf8(whole)


def tip_memo(index: int, count: int, display_amount: str | None, sats: int) -> str:
    """``BlinkPOS Tip (i/n): <display amount> (<N> sats)``; ``index`` counts from 1.

    Without a display amount (a sale shown in sats) it reads ``BlinkPOS Tip (i/n): <N> sats``.
    """
    if not 1 <= index <= count:
        raise ValueError("index must be between 1 and count")
    amount = f"{_without_surrogates(display_amount)} ({sats} sats)" if display_amount else f"{sats} sats"
    return truncate_utf8(f"{MEMO_PREFIX} Tip ({index}/{count}): {amount}")


def format_display_amount(amount: Decimal, currency: str) -> str:
    """How the POS shows an amount: ``$1.50``, ``€2.00``, ``1500 JPY``, ``12.30 CHF`` or ``210 sats``."""
    code = currency.upper()
    if code in _SATS_CURRENCIES:
        return f"{_rounded(amount, 0)} sats"
    places = 0 if code in _WHOLE_UNIT_CURRENCIES else 2
    number = _rounded(amount, places)
    symbol = _CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{number}" if symbol else f"{number} {code}"


def describe_tip(
    tip_sats: int,
    display_currency: str | None,
    tip_amount_display: Decimal | None,
    tip_percent: Decimal | None,
) -> str:
    """The tip as the customer chose it, for the merchant memo.

    The display amount when the sale was shown in a fiat currency (``$1.50``), else the
    percentage (``10%``), else the sats (``150 sats``).
    """
    currency = (display_currency or "BTC").upper()
    if tip_amount_display is not None and currency not in _SATS_CURRENCIES:
        return format_display_amount(tip_amount_display, currency)
    if tip_percent is not None and tip_percent > 0:
        return f"{tip_percent.normalize():f}%"
    return f"{tip_sats} sats"


def tip_leg_display_amount(
    leg_sats: int,
    tip_sats: int,
    display_currency: str | None,
    tip_amount_display: Decimal | None,
) -> str | None:
    """A tip leg's part of the displayed fiat tip (pro rata by sats), or None for sats-only sales."""
    currency = (display_currency or "BTC").upper()
    if tip_amount_display is None or tip_sats <= 0 or currency in _SATS_CURRENCIES:
        return None
    return format_display_amount(tip_amount_display * leg_sats / tip_sats, currency)


def _tip_note(tip_text: str | None, recipients: Sequence[str]) -> str:
    if not tip_text:
        return ""
    names = ", ".join(recipients)
    return f" | {tip_text} tip to {names}" if names else f" | {tip_text} tip"


def _step_back_to_cluster_start(text: str, cut: int) -> int:
    """Move ``cut`` left until ``text[cut]`` does not continue the character before it."""
    while 0 < cut < len(text) and (
        _continues_previous(text[cut]) or text[cut - 1] == _ZERO_WIDTH_JOINER or _splits_flag(text, cut)
    ):
        cut -= 1
    return cut


def _continues_previous(char: str) -> bool:
    code_point = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == _ZERO_WIDTH_JOINER
        or 0xFE00 <= code_point <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code_point <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code_point <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


def _splits_flag(text: str, cut: int) -> bool:
    """True when ``cut`` falls between the two regional indicators of one flag."""
    if not _is_regional_indicator(text[cut]):
        return False
    run = 0
    while cut - run - 1 >= 0 and _is_regional_indicator(text[cut - run - 1]):
        run += 1
    return run % 2 == 1


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _without_surrogates(text: str) -> str:
    """Lone surrogates (possible in JSON-decoded text) replaced by U+FFFD: UTF-8 cannot carry them."""
    if not any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _rounded(amount: Decimal, places: int) -> str:
    return f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}"
