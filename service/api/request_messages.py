"""What the request schemas answer when a rule breaks: each message with the stable code it gives.

The limits a message quotes live here beside it, so the text and the rule never disagree.
"""

from __future__ import annotations

from service.api.fields import ErrorCode, message

MAX_TIP_RECIPIENTS = 10
SUPPORTED_CURRENCIES = ("BTC", "USD")

AMOUNT_REQUIRED = message(ErrorCode.AMOUNT_REQUIRED, "amount is required")
INVALID_AMOUNT = message(ErrorCode.INVALID_AMOUNT, "amount must be a positive whole number of sats")
API_KEY_REQUIRED = message(ErrorCode.API_KEY_REQUIRED, "apiKey is required")
USER_API_KEY_REQUIRED = message(ErrorCode.API_KEY_REQUIRED, "userApiKey is required")
WALLET_ID_REQUIRED = message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId (or walletId) is required")
USER_WALLET_ID_REQUIRED = message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId is required")
INVALID_BASE_AMOUNT = message(
    ErrorCode.INVALID_BASE_AMOUNT, "baseAmount must be a whole number of sats, at least 0"
)
INVALID_TIP_AMOUNT = message(
    ErrorCode.TIP_AMOUNT_MISMATCH, "tipAmount must be a whole number of sats, at least 0"
)
TIP_RECIPIENT_REQUIRED = message(
    ErrorCode.TIP_RECIPIENT_REQUIRED, "a sale with a tip needs tipRecipient or tipRecipients"
)
TIP_RECIPIENTS_NOT_A_LIST = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipients must be a list of objects with a username and a share"
)
TIP_RECIPIENT_NOT_AN_OBJECT = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient must be an object with a username and a share"
)
TIP_RECIPIENT_USERNAME_MISSING = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient needs a username"
)
TOO_MANY_TIP_RECIPIENTS = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, f"tipRecipients must list at most {MAX_TIP_RECIPIENTS} recipients"
)
DUPLICATE_TIP_RECIPIENT = message(ErrorCode.INVALID_TIP_RECIPIENTS, "a recipient is listed twice")
PARTIAL_SHARES = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "give a share to every tip recipient or to none (equal shares)"
)
TIP_RECIPIENT_NOT_LISTED = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipient must be one of tipRecipients"
)
UNSUPPORTED_CURRENCY = message(
    ErrorCode.UNSUPPORTED_CURRENCY, f"currency must be one of {', '.join(SUPPORTED_CURRENCIES)}"
)
UNKNOWN_SPLIT_PROFILE = message(
    ErrorCode.UNKNOWN_SPLIT_PROFILE, "splitProfileId names no split profile made with this apiKey"
)
SPLIT_PROFILE_WITH_TIP_RECIPIENTS = message(
    ErrorCode.SPLIT_PROFILE_WITH_TIP_RECIPIENTS,
    "send either splitProfileId or tipRecipient(s): the profile decides the tip split",
)
MERCHANT_DESTINATION_CONFLICT = message(
    ErrorCode.MERCHANT_DESTINATION_CONFLICT,
    "send either apiKey and userWalletId or merchantLightningAddress, not both",
)
PROFILE_NEEDS_API_KEY = message(
    ErrorCode.API_KEY_REQUIRED, "splitProfileId needs the apiKey of the merchant whose profile it is"
)
WALLET_IDS_DISAGREE = "userWalletId and walletId must be the same wallet"  # stays invalid_request
