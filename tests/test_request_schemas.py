"""Request validation: every rule answers with its stable error code; good bodies give exact sats."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.fields import ErrorCode, shared_schema
from service.api.request_schemas import (
    ForwardPaymentSchema,
    ForwardWithTipsSchema,
    ValidationFailed,
)
from service.api.response_schemas import (
    PUBLIC_FORWARD_EXCLUDE,
    PUBLIC_STATUS_EXCLUDE,
    CreateInvoiceResponseSchema,
    ErrorResponseSchema,
    Forwarded,
    ForwardResponseSchema,
    IssuedInvoice,
    PaymentStatusSchema,
)
from service.api.sale_request import CreateInvoiceSchema
from service.domain.model import Leg, LegKind, LegStatus, Split, SplitStatus, TipRecipient
from service.domain.normalize import normalize_username
from service.errors import BadRequest
from service.payments.inputs import ForwardPaymentRequest, ForwardWithTipsRequest, InvoiceRequest

MAX_SATS = 10_000_000
API_KEY = "blink_Secret-Key-do-not-echo"
HASH = "ab" * 32


def sale(**overrides):
    body = {
        "amount": 1000,
        "currency": "BTC",
        "memo": "2 coffees",
        "apiKey": API_KEY,
        "userWalletId": "merchant-wallet",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def parse(body) -> InvoiceRequest:
    return CreateInvoiceSchema(max_invoice_sats=MAX_SATS).parse(body)


def failure(body, schema=None) -> ValidationFailed:
    schema = schema or CreateInvoiceSchema(max_invoice_sats=MAX_SATS)
    with pytest.raises(ValidationFailed) as caught:
        schema.parse(body)
    return caught.value


def code_of(body, schema=None) -> str:
    return failure(body, schema).code


# --- good bodies ----------------------------------------------------------------------------------


def test_sale_without_tip_is_all_base():
    request = parse(sale())
    assert (request.invoice_sats, request.base_sats, request.tip_sats) == (1000, 1000, 0)
    assert request.merchant_wallet_id == "merchant-wallet"
    assert request.merchant_api_key == API_KEY
    assert request.memo == "2 coffees"
    assert request.tip_recipients == ()
    assert not request.has_tip


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_a_pos_page_sending_unset_optional_fields_as_blank_makes_a_keyed_sale(blank):
    # A settings form posts an empty merchantLightningAddress / splitProfileId when unset.
    request = parse(sale(merchantLightningAddress=blank, splitProfileId=blank, tipAmount=100,
                         tipRecipient="alice"))
    assert request.merchant_api_key == API_KEY and request.merchant_wallet_id == "merchant-wallet"
    assert request.merchant_payout_address is None and request.split_profile_id is None
    assert [r.username for r in request.tip_recipients] == ["alice"]


def test_tip_amount_alone_sets_base_to_amount_minus_tip():
    request = parse(sale(tipAmount=100, tipRecipient="alice"))
    assert (request.base_sats, request.tip_sats) == (900, 100)
    assert request.client_tip_sats == 100


def test_base_amount_decides_and_tip_is_the_rest():
    request = parse(sale(baseAmount=900, tipRecipient="alice"))
    assert (request.base_sats, request.tip_sats) == (900, 100)


def test_client_tip_one_sat_off_is_accepted_but_not_trusted():
    request = parse(sale(baseAmount=900, tipAmount=101, tipRecipient="alice"))
    assert (request.base_sats, request.tip_sats) == (900, 100)
    assert request.client_tip_sats == 101


def test_client_tip_two_sats_off_is_a_mismatch():
    assert code_of(sale(baseAmount=900, tipAmount=102, tipRecipient="alice")) == "tip_amount_mismatch"
    assert code_of(sale(baseAmount=900, tipAmount=98, tipRecipient="alice")) == "tip_amount_mismatch"


def test_base_equal_to_amount_makes_a_sale_without_tip():
    request = parse(sale(baseAmount=1000, tipAmount=0, tipRecipients=[]))
    assert (request.base_sats, request.tip_sats) == (1000, 0)


def test_whole_sale_can_be_tip():
    request = parse(sale(baseAmount=0, tipRecipient="alice"))
    assert (request.base_sats, request.tip_sats) == (0, 1000)


def test_pos_page_body_parses_with_extras_ignored():
    body = {
        "amount": 1100,
        "currency": "BTC",
        "memo": "$10.00 + 10% tip = $11.00 (1100 sats)",
        "displayCurrency": "USD",
        "baseAmount": 1000,
        "tipAmount": 100,
        "tipPercent": 10,
        "tipRecipients": [{"username": "Alice", "share": 60}, {"username": "bob_2", "share": 40}],
        "baseAmountDisplay": 10,
        "tipAmountDisplay": 1.0,
        "walletId": "merchant-wallet",
        "userWalletId": "merchant-wallet",
        "apiKey": API_KEY,
        "nwcActive": False,
        "blinkLnAddress": True,
    }
    request = parse(body)
    assert request == InvoiceRequest(
        invoice_sats=1100,
        base_sats=1000,
        tip_sats=100,
        merchant_wallet_id="merchant-wallet",
        merchant_api_key=API_KEY,
        currency="BTC",
        memo="$10.00 + 10% tip = $11.00 (1100 sats)",
        display_currency="USD",
        tip_percent=Decimal("10"),
        tip_recipients=(TipRecipient("alice", Fraction(60)), TipRecipient("bob_2", Fraction(40))),
        base_amount_display=Decimal("10"),
        tip_amount_display=Decimal("1.0"),
        client_tip_sats=100,
    )


def test_single_tip_recipient_becomes_one_recipient_with_share_one():
    request = parse(sale(tipAmount=100, tipRecipient="Alice"))
    assert request.tip_recipients == (TipRecipient("alice", Fraction(1)),)


def test_recipients_without_shares_share_equally():
    request = parse(sale(tipAmount=100, tipRecipients=[{"username": "alice"}, {"username": "bob"}]))
    assert request.tip_recipients == (TipRecipient("alice", Fraction(1)), TipRecipient("bob", Fraction(1)))


def test_float_share_is_loaded_exactly():
    request = parse(sale(tipAmount=100, tipRecipients=[{"username": "alice", "share": 33.3}]))
    assert request.tip_recipients[0].share == Fraction(333, 10)


def test_tip_recipient_naming_one_of_the_list_agrees():
    request = parse(
        sale(tipAmount=100, tipRecipient="BOB", tipRecipients=[{"username": "alice"}, {"username": "bob"}])
    )
    assert [recipient.username for recipient in request.tip_recipients] == ["alice", "bob"]


def test_empty_recipient_list_is_fine_without_tip():
    # The POS page sends tipRecipients: [] (and tipRecipient: "") on every sale without tip.
    assert parse(sale(tipAmount=0, tipRecipients=[], tipRecipient="")).tip_recipients == ()


def test_wallet_id_alias_and_currency_defaults():
    request = parse(sale(userWalletId=..., walletId=" wallet-b ", currency=..., memo=None))
    assert request.merchant_wallet_id == "wallet-b"
    assert request.currency == "BTC"
    assert request.memo == ""
    assert request.display_currency == "BTC"


def test_usd_sale_and_lowercase_codes_are_normalised():
    request = parse(sale(currency="usd", displayCurrency="eur"))
    assert (request.currency, request.display_currency) == ("USD", "EUR")


def test_amount_at_the_limit_is_accepted():
    assert parse(sale(amount=MAX_SATS)).invoice_sats == MAX_SATS


def test_memo_of_exactly_639_bytes_is_accepted():
    memo = "\u5496" * 213  # 639 bytes
    assert parse(sale(memo=memo)).memo == memo


def test_api_key_is_not_in_the_request_repr():
    assert API_KEY not in repr(parse(sale()))


@given(
    amount=st.integers(min_value=1, max_value=MAX_SATS),
    data=st.data(),
)
def test_accepted_sales_always_add_up(amount, data):
    base = data.draw(st.integers(min_value=0, max_value=amount))
    request = parse(sale(amount=amount, baseAmount=base, tipRecipient="alice"))
    assert request.base_sats + request.tip_sats == request.invoice_sats == amount
    assert request.base_sats == base


# --- every rule and its code ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": ...}, "amount_required"),
        ({"amount": None}, "amount_required"),
        ({"amount": 0}, "invalid_amount"),
        ({"amount": -5}, "invalid_amount"),
        ({"amount": 1.5}, "invalid_amount"),
        ({"amount": 100.0}, "invalid_amount"),
        ({"amount": True}, "invalid_amount"),
        ({"amount": "100"}, "invalid_amount"),
        ({"amount": "lots"}, "invalid_amount"),
        ({"amount": [100]}, "invalid_amount"),
        ({"amount": MAX_SATS + 1}, "amount_too_large"),
        ({"apiKey": ...}, "api_key_required"),
        ({"apiKey": ""}, "api_key_required"),
        ({"apiKey": "   "}, "api_key_required"),
        ({"apiKey": None}, "api_key_required"),
        ({"userWalletId": ...}, "wallet_id_required"),
        ({"userWalletId": ""}, "wallet_id_required"),
        ({"userWalletId": None, "walletId": None}, "wallet_id_required"),
        ({"baseAmount": -1}, "invalid_base_amount"),
        ({"baseAmount": 1001}, "invalid_base_amount"),
        ({"baseAmount": 10.5}, "invalid_base_amount"),
        ({"baseAmount": "900"}, "invalid_base_amount"),
        ({"tipAmount": 1001, "tipRecipient": "alice"}, "tip_amount_mismatch"),
        ({"tipAmount": -1, "tipRecipient": "alice"}, "tip_amount_mismatch"),
        ({"tipAmount": 1.5, "tipRecipient": "alice"}, "tip_amount_mismatch"),
        ({"baseAmount": 900, "tipAmount": 0, "tipRecipient": "alice"}, "tip_amount_mismatch"),
        ({"tipAmount": 100}, "tip_recipient_required"),
        ({"baseAmount": 900}, "tip_recipient_required"),
        ({"tipAmount": 100, "tipRecipients": []}, "tip_recipient_required"),
        ({"tipAmount": 100, "tipRecipients": None, "tipRecipient": ""}, "tip_recipient_required"),
        ({"currency": "EUR"}, "unsupported_currency"),
        ({"currency": 42}, "unsupported_currency"),
        ({"currency": None}, "unsupported_currency"),
        ({"memo": "x" * 640}, "memo_too_long"),
        ({"memo": "\U0001f600" * 160}, "memo_too_long"),  # 640 bytes in 160 characters
        ({"memo": 42}, "invalid_request"),
        ({"memo": "lone \ud800 surrogate"}, "invalid_request"),
        ({"walletId": "another-wallet"}, "invalid_request"),
        ({"tipPercent": -1}, "invalid_request"),
        ({"tipPercent": 1001}, "invalid_request"),
        ({"tipAmountDisplay": -0.5}, "invalid_request"),
        ({"baseAmountDisplay": "1e999999"}, "invalid_request"),
        ({"tipPercent": "NaN"}, "invalid_request"),
        ({"baseAmountDisplay": "ten"}, "invalid_request"),
        ({"displayCurrency": "US DOLLAR"}, "invalid_request"),
        ({"apiKey": "k" * 257}, "invalid_request"),
        # HTTP headers carry the key to Blink: anything but printable ASCII could never be one.
        ({"apiKey": "blink_\u00e4\u20ac"}, "invalid_merchant_api_key"),
        ({"apiKey": " blink_key"}, "invalid_merchant_api_key"),
    ],
)
def test_rule_answers_with_its_code(overrides, code):
    assert code_of(sale(**overrides)) == code


@pytest.mark.parametrize(
    "username",
    [
        "ab",  # too short
        "a" * 51,  # too long
        "alice!",
        "al ice",
        "1alice",
        "3alice",
        "bc1alice",
        "lnbc1alice",
        "BC1ALICE",  # the prefix rule is case-insensitive too
        "",
        42,
    ],
)
def test_bad_username_is_invalid_username(username):
    assert (
        code_of(sale(tipAmount=100, tipRecipients=[{"username": username, "share": 1}])) == "invalid_username"
    )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (" Alice@GetAlby.com ", "Alice@GetAlby.com"),
        ("npub1" + "q" * 58 + "@npub.cash", "npub1" + "q" * 58 + "@npub.cash"),
        ("LNURL1DP68GURN8GHJ7", "LNURL1DP68GURN8GHJ7"),
        ("bob@blink.sv", "bob@blink.sv"),
        ("Carol", "carol"),
    ],
)
def test_addresses_and_lnurls_are_kept_for_the_payment_layer_to_parse(sent, kept):
    request = parse(sale(tipAmount=100, tipRecipients=[{"username": sent, "share": 1}]))
    assert [recipient.username for recipient in request.tip_recipients] == [kept]


def test_a_recipient_longer_than_2000_characters_is_refused():
    long_address = "a" * 2000 + "@example.com"
    assert code_of(sale(tipAmount=100, tipRecipient=long_address)) == "invalid_tip_recipients"


def test_bad_single_tip_recipient_is_invalid_username():
    assert code_of(sale(tipAmount=100, tipRecipient="lnbc1xyz")) == "invalid_username"


def test_a_recipient_that_is_nothing_accepted_says_an_address_would_do_too():
    # A Lightning Address that lost its "@" reads as a bad username: the message names every form.
    error = failure(sale(tipAmount=100, tipRecipients=[{"username": "carol127.0.0.1:5000", "share": 1}]))
    assert error.code == "invalid_username"
    assert "a Lightning Address (name@domain) or an LNURL" in error.message


@pytest.mark.parametrize(
    "recipients",
    [
        [{"username": f"user{i}"} for i in range(11)],  # more than 10
        [{"username": "alice"}, {"username": "ALICE"}],  # duplicate, case-insensitive
        [{"username": "alice", "share": 0}],
        [{"username": "alice", "share": -2}],
        [{"username": "alice", "share": "50"}],
        [{"username": "alice", "share": True}],
        [{"username": "alice", "share": None}, {"username": "bob", "share": 3}],  # some shares missing
        [{"share": 1}],  # no username
        ["alice"],  # not an object
        "alice",  # not a list
    ],
)
def test_bad_recipient_list_is_invalid_tip_recipients(recipients):
    assert code_of(sale(tipAmount=100, tipRecipients=recipients)) == "invalid_tip_recipients"


def test_ten_recipients_are_allowed():
    recipients = [{"username": f"user{i}"} for i in range(10)]
    assert len(parse(sale(tipAmount=100, tipRecipients=recipients)).tip_recipients) == 10


def test_tip_recipient_disagreeing_with_the_list_is_invalid_tip_recipients():
    body = sale(
        tipAmount=100, tipRecipient="carol", tipRecipients=[{"username": "alice"}, {"username": "bob"}]
    )
    assert code_of(body) == "invalid_tip_recipients"


def test_one_sat_invoice_with_a_large_base_is_refused():
    # The original service stored such a split and later paid the large base out of the pool.
    error = failure(sale(amount=1, baseAmount=500_000, tipAmount=0))
    assert error.code == "invalid_base_amount"


@pytest.mark.parametrize("body", [None, [], "amount=100", 100])
def test_body_that_is_not_an_object_is_invalid_request(body):
    assert code_of(body) == "invalid_request"


# --- the error object -----------------------------------------------------------------------------


def test_first_failing_rule_names_the_error_and_every_message_is_kept():
    error = failure({"amount": "x", "memo": "y" * 700, "currency": "EUR"})
    assert error.code == "invalid_amount"
    assert error.message == "amount must be a positive whole number of sats"
    assert set(error.fields) == {"amount", "apiKey", "userWalletId", "memo", "currency"}


def test_cross_field_rules_are_reported_next_to_field_errors():
    error = failure(sale(baseAmount=2000, memo="y" * 700))
    assert error.code == "invalid_base_amount"
    assert set(error.fields) == {"baseAmount", "memo"}


def test_nested_errors_have_dotted_paths():
    error = failure(sale(tipAmount=100, tipRecipients=[{"username": "alice"}, {"username": "1bad"}]))
    assert error.code == "invalid_username"
    assert list(error.fields) == ["tipRecipients.1.username"]


def test_validation_failure_is_a_400_with_fields_in_details():
    error = failure(sale(amount=...))
    assert isinstance(error, BadRequest)
    assert error.status == 400
    assert error.details == {"fields": error.fields}


def test_error_never_contains_the_api_key():
    bad_bodies = [
        sale(amount="x"),
        sale(apiKey=API_KEY * 20),
        sale(walletId="other"),
        {"apiKey": API_KEY},
        sale(tipAmount=100, tipRecipient=API_KEY),
    ]
    for body in bad_bodies:
        error = failure(body)
        assert API_KEY not in json.dumps([error.code, error.message, error.fields])


def test_amount_too_large_names_the_configured_limit():
    error = failure(sale(amount=5001), CreateInvoiceSchema(max_invoice_sats=5000))
    assert error.code == "amount_too_large"
    assert "5000" in error.message


# --- usernames ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Alice", "alice"),
        ("  bob_2 ", "bob_2"),
        ("Carol@blink.sv", "carol"),
        ("a2c", "a2c"),
        ("b" * 50, "b" * 50),
        ("bc1", None),
        ("lnbc1q", None),
        ("lnbc2", "lnbc2"),  # only the lnbc1 prefix is an invoice
        ("x@other.com", None),
    ],
)
def test_username_normalisation(raw, expected):
    assert normalize_username(raw) == expected


# --- forward-with-tips ----------------------------------------------------------------------------


def test_forward_with_tips_lowercases_the_hash_and_records_the_total():
    request = ForwardWithTipsSchema(max_invoice_sats=MAX_SATS).parse(
        {"paymentHash": HASH.upper(), "totalAmount": 1100, "memo": "m"}
    )
    assert request == ForwardWithTipsRequest(payment_hash=HASH, client_total_sats=1100, memo="m")


def test_forward_with_tips_needs_only_the_hash():
    assert ForwardWithTipsSchema(max_invoice_sats=MAX_SATS).parse(
        {"paymentHash": HASH}
    ) == ForwardWithTipsRequest(HASH, None, None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "payment_hash_required"),
        ({"paymentHash": None}, "payment_hash_required"),
        ({"paymentHash": ""}, "payment_hash_required"),
        ({"paymentHash": "ab" * 31}, "invalid_payment_hash"),
        ({"paymentHash": "zz" * 32}, "invalid_payment_hash"),
        ({"paymentHash": 12}, "invalid_payment_hash"),
        ({"paymentHash": HASH, "totalAmount": -1}, "invalid_request"),
        ({"paymentHash": HASH, "totalAmount": 1.5}, "invalid_request"),
        ({"paymentHash": HASH, "memo": "x" * 640}, "memo_too_long"),
        ({"paymentHash": HASH, "totalAmount": MAX_SATS + 1}, "amount_too_large"),
    ],
)
def test_forward_with_tips_rules(body, code):
    assert code_of(body, ForwardWithTipsSchema(max_invoice_sats=MAX_SATS)) == code


# --- forward-payment ------------------------------------------------------------------------------


def test_forward_payment_ignores_the_amount_the_page_sends():
    body = {"paymentHash": HASH, "userApiKey": API_KEY, "userWalletId": "w1", "amount": 10**9, "memo": "x"}
    request = ForwardPaymentSchema().parse(body)
    assert request == ForwardPaymentRequest(
        payment_hash=HASH, merchant_wallet_id="w1", merchant_api_key=API_KEY
    )
    assert API_KEY not in repr(request)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"userApiKey": API_KEY, "userWalletId": "w1", "amount": 1000}, "payment_hash_required"),
        ({"paymentHash": "nope", "userApiKey": API_KEY, "userWalletId": "w1"}, "invalid_payment_hash"),
        ({"paymentHash": HASH, "userWalletId": "w1"}, "api_key_required"),
        ({"paymentHash": HASH, "userApiKey": " ", "userWalletId": "w1"}, "api_key_required"),
        ({"paymentHash": HASH, "userApiKey": "k\u00e9y", "userWalletId": "w1"}, "invalid_merchant_api_key"),
        ({"paymentHash": HASH, "userApiKey": API_KEY}, "wallet_id_required"),
        ({"paymentHash": HASH, "userApiKey": API_KEY, "userWalletId": ""}, "wallet_id_required"),
    ],
)
def test_forward_payment_rules(body, code):
    assert code_of(body, ForwardPaymentSchema()) == code


# --- response schemas: what they dump is what they describe ---------------------------------------

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def completed_split() -> Split:
    def leg(leg_id, kind, recipient, sats, position):
        return Leg(
            id=leg_id, split_id=1, kind=kind, recipient=recipient, recipient_wallet_id=None, sats=sats,
            position=position, status=LegStatus.SUCCEEDED, payment_request="lnbc1...", payment_hash="cd" * 32,
            attempts=1, last_error=None, next_attempt_at=None, paid_at=NOW,
        )  # fmt: skip

    return Split(
        id=1, payment_hash=HASH, payment_request="lnbc1...", invoice_sats=1100, base_sats=1000, tip_sats=100,
        tip_percent=Decimal("10"), merchant_wallet_id="merchant-wallet", merchant_key_fingerprint="fp",
        tip_recipients=(TipRecipient("alice", Fraction(3, 2)), TipRecipient("bob", Fraction(1))),
        display_currency="USD", base_amount_display=Decimal("10"), tip_amount_display=Decimal("1"),
        memo="2 coffees", environment="test", status=SplitStatus.COMPLETED, created_at=NOW, expires_at=NOW,
        paid_at=NOW, processed_at=NOW, last_error=None, claimed_by=None, claimed_at=None,
        legs=(
            leg(1, LegKind.BASE, "merchant-wallet", 1000, 0),
            leg(2, LegKind.TIP, "alice", 60, 1),
            leg(3, LegKind.TIP, "bob", 40, 2),
        ),
    )  # fmt: skip


def test_create_invoice_answer_matches_its_schema():
    invoice = IssuedInvoice(completed_split(), parse(sale()).currency, "pos-wallet")
    answer = CreateInvoiceResponseSchema().dump({"invoice": invoice})
    assert CreateInvoiceResponseSchema().validate(answer) == {}
    assert set(answer["invoice"]) == {
        "paymentRequest", "paymentHash", "satoshis", "amount", "currency", "memo", "walletId",
        "userWalletId", "hasTip", "tipAmount", "tipRecipient", "tipRecipients", "expiresAt",
    }  # fmt: skip
    assert API_KEY not in json.dumps(answer)


def test_forward_answer_matches_its_schema():
    answer = ForwardResponseSchema().dump(Forwarded(completed_split(), already_processed=True))
    assert ForwardResponseSchema().validate(answer) == {}
    assert {
        "paymentHash", "totalAmount", "forwardedAmount", "userWalletId", "paymentStatus",
        "invoiceHash", "tipResult", "tipSplitting", "alreadyProcessed",
    } <= set(answer["details"])  # fmt: skip
    public = ForwardResponseSchema(exclude=PUBLIC_FORWARD_EXCLUDE).dump(
        Forwarded(completed_split(), already_processed=True)
    )
    assert ForwardResponseSchema().validate(public) == {}
    assert "userWalletId" not in public["details"] and "invoiceHash" not in public["details"]


@pytest.mark.parametrize("exclude", [(), PUBLIC_STATUS_EXCLUDE])
def test_payment_status_answer_matches_its_schema(exclude):
    answer = PaymentStatusSchema(exclude=exclude).dump(completed_split())
    assert PaymentStatusSchema().validate(answer) == {}


def test_schemas_notice_an_answer_that_drifted():
    answer = PaymentStatusSchema().dump(completed_split())
    answer["invoiceSats"] = "1100 sats"
    answer["surprise"] = 1
    assert set(PaymentStatusSchema().validate(answer)) == {"invoiceSats", "surprise"}


def test_share_dumps_as_a_json_number():
    dumped = CreateInvoiceResponseSchema().dump(
        {"invoice": {"tip_legs": [{"username": "alice", "share": Fraction(3, 2)}, {"share": Fraction(2)}]}}
    )
    assert [entry["share"] for entry in dumped["invoice"]["tipRecipients"]] == [1.5, 2]


def test_error_schema_dumps_the_contract_shape():
    error = ErrorResponseSchema().dump(
        {"error": "amount is required", "code": "amount_required", "details": {}}
    )
    assert error == {"error": "amount is required", "code": "amount_required", "details": {}}


def test_every_schema_renders_as_json_openapi():
    spec = APISpec("BlinkPOS payment service", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    for name, schema in [
        ("CreateInvoiceRequest", CreateInvoiceSchema(max_invoice_sats=MAX_SATS)),
        ("ForwardWithTipsRequest", ForwardWithTipsSchema(max_invoice_sats=MAX_SATS)),
        ("ForwardPaymentRequest", ForwardPaymentSchema()),
        ("CreateInvoiceResponse", CreateInvoiceResponseSchema()),
        ("ForwardResponse", ForwardResponseSchema()),
        ("PaymentStatus", PaymentStatusSchema()),
        ("Error", ErrorResponseSchema()),
    ]:
        spec.components.schema(name, schema=schema)
    document = json.loads(json.dumps(spec.to_dict()))
    properties = document["components"]["schemas"]["CreateInvoiceRequest"]["properties"]
    assert properties["amount"] == {"type": "integer", "minimum": 1, "maximum": MAX_SATS}
    assert properties["tipRecipients"]["maxItems"] == 10


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
known_keys = st.sampled_from(
    ["amount", "currency", "memo", "apiKey", "userWalletId", "walletId", "displayCurrency", "baseAmount",
     "tipAmount", "tipPercent", "tipRecipient", "tipRecipients", "baseAmountDisplay", "tipAmountDisplay"]
)  # fmt: skip
recipient_entries = st.fixed_dictionaries(
    {"username": st.sampled_from(["alice", "bob", "1x", "Carol"])},
    optional={"share": st.one_of(st.integers(-1, 5), st.floats(), st.none())},
)


# Generating nested JSON is slow on a loaded machine; that says nothing about the schema.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=st.dictionaries(known_keys, json_values | st.integers(0, 2000), max_size=6),
    recipients=st.none() | st.lists(recipient_entries, max_size=4),
)
def test_any_body_gives_a_consistent_request_or_a_known_code(overrides, recipients):
    body = sale(**overrides)
    if recipients is not None:
        body["tipRecipients"] = recipients
    try:
        request = parse(body)
    except ValidationFailed as error:
        assert error.code in {code.value for code in ErrorCode}
        assert error.fields
        return
    assert request.base_sats + request.tip_sats == request.invoice_sats
    assert request.base_sats >= 0 and request.tip_sats >= 0
    assert 1 <= request.invoice_sats <= MAX_SATS
    assert not request.has_tip or request.tip_recipients
    assert all(recipient.share > 0 for recipient in request.tip_recipients)


def test_view_entry_points_parse_with_the_configured_limit():
    assert shared_schema(CreateInvoiceSchema, max_invoice_sats=MAX_SATS).parse(sale()).invoice_sats == 1000
    with pytest.raises(ValidationFailed) as caught:
        shared_schema(CreateInvoiceSchema, max_invoice_sats=5000).parse(sale(amount=6000))
    assert caught.value.code == "amount_too_large"
    forward_with_tips = shared_schema(ForwardWithTipsSchema, max_invoice_sats=MAX_SATS)
    assert forward_with_tips.parse({"paymentHash": HASH.upper()}).payment_hash == HASH
    forward = shared_schema(ForwardPaymentSchema).parse(
        {"paymentHash": HASH, "userApiKey": API_KEY, "userWalletId": "w1"}
    )
    assert forward.merchant_wallet_id == "w1"
