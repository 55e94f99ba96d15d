"""The tip split and the leg plan: exact sums, no zero legs, deterministic tie-breaking."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.model import LegKind, PlannedLeg, TipRecipient
from service.payments.splitting import plan_legs, split_tip

MERCHANT_WALLET = "merchant-wallet-id"

shares = st.fractions(min_value=Fraction(1, 1000), max_value=1000)
tips = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def recipient_lists(draw, min_size=1, max_size=10, share_strategy=shares):
    weights = draw(st.lists(share_strategy, min_size=min_size, max_size=max_size))
    return [TipRecipient(f"user{i}", weight) for i, weight in enumerate(weights)]


def amounts(result: list[tuple[TipRecipient, int]]) -> list[int]:
    return [sats for _, sats in result]


def test_even_split_gives_the_odd_sat_to_the_first_recipient():
    alice, bob = TipRecipient("alice", Fraction(1)), TipRecipient("bob", Fraction(1))
    assert split_tip(101, [alice, bob]) == [(alice, 51), (bob, 50)]


def test_three_way_split_of_100_sats():
    people = [TipRecipient(name, Fraction(1)) for name in ("a", "b", "c")]
    assert amounts(split_tip(100, people)) == [34, 33, 33]


def test_weights_are_relative_not_percentages():
    heavy, light = TipRecipient("heavy", Fraction(3)), TipRecipient("light", Fraction(1))
    assert amounts(split_tip(1000, [heavy, light])) == [750, 250]


def test_largest_remainder_beats_list_order():
    # 3 sats at weights 1:9 -> exact 0.3 and 2.7; the left-over sat goes to the larger remainder (0.7),
    # so the first recipient gets 0 and is dropped.
    first, second = TipRecipient("first", Fraction(1)), TipRecipient("second", Fraction(9))
    assert split_tip(3, [first, second]) == [(second, 3)]


def test_recipient_rounding_to_zero_is_dropped_and_tip_resplit():
    # 2 sats over three equal recipients: the third would get 0, so the two others share 2.
    people = [TipRecipient(name, Fraction(1)) for name in ("a", "b", "c")]
    assert split_tip(2, people) == [(people[0], 1), (people[1], 1)]


def test_dropping_repeats_until_no_zero_part_is_left():
    # 1 sat, weights 5, 4, 1: the rule first gives [1, 0, 0]; only the heaviest remains.
    people = [TipRecipient("a", Fraction(5)), TipRecipient("b", Fraction(4)), TipRecipient("c", Fraction(1))]
    assert split_tip(1, people) == [(people[0], 1)]


def test_zero_tip_gives_no_parts():
    assert split_tip(0, [TipRecipient("alice", Fraction(1))]) == []
    assert split_tip(0, []) == []


def test_positive_tip_without_recipients_is_refused():
    with pytest.raises(ValueError):
        split_tip(10, [])


def test_negative_tip_is_refused():
    with pytest.raises(ValueError):
        split_tip(-1, [TipRecipient("alice", Fraction(1))])


@pytest.mark.parametrize("share", [Fraction(0), Fraction(-1)])
def test_non_positive_share_is_refused(share):
    with pytest.raises(ValueError):
        split_tip(10, [TipRecipient("alice", Fraction(1)), TipRecipient("bob", share)])


@given(tip=tips, recipients=recipient_lists())
def test_parts_sum_exactly_to_the_tip_and_none_is_zero(tip, recipients):
    result = split_tip(tip, recipients)
    assert sum(amounts(result)) == tip
    assert all(sats > 0 for sats in amounts(result))
    # Result keeps the input order and holds each recipient at most once.
    kept = [recipient for recipient, _ in result]
    assert kept == [recipient for recipient in recipients if recipient in kept]


@given(tip=tips, recipients=recipient_lists())
def test_each_part_is_within_one_sat_of_its_exact_share_when_nobody_is_dropped(tip, recipients):
    result = split_tip(tip, recipients)
    if tip == 0 or len(result) < len(recipients):
        return
    total_weight = sum(recipient.share for recipient in recipients)
    for recipient, sats in result:
        assert abs(sats - Fraction(tip) * recipient.share / total_weight) < 1


@given(tip=tips, recipients=recipient_lists())
def test_split_is_deterministic(tip, recipients):
    assert split_tip(tip, recipients) == split_tip(tip, list(recipients))


@given(tip=st.integers(min_value=1, max_value=100_000), count=st.integers(min_value=1, max_value=10))
def test_equal_weights_differ_by_at_most_one_and_extra_sats_go_first(tip, count):
    people = [TipRecipient(f"user{i}", Fraction(7)) for i in range(count)]
    parts = amounts(split_tip(tip, people))
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)
    if tip < count:
        assert [recipient.username for recipient, _ in split_tip(tip, people)] == [
            f"user{i}" for i in range(tip)
        ]


@given(tip=st.integers(min_value=1, max_value=100_000), order=st.permutations(range(5)))
def test_permuting_equal_weights_only_moves_who_gets_the_extra_sats(tip, order):
    people = [TipRecipient(f"user{i}", Fraction(1)) for i in range(5)]
    original = split_tip(tip, people)
    permuted = split_tip(tip, [people[i] for i in order])
    # The multiset of amounts is unchanged and, position by position, the amounts agree:
    # who sits at the front of the list gets the extra sats.
    assert amounts(permuted) == amounts(original)
    assert [recipient.username for recipient, _ in permuted] == [f"user{i}" for i in order][: len(permuted)]


def test_plan_puts_the_base_leg_first_then_tips_in_recipient_order():
    alice, bob = TipRecipient("alice", Fraction(1)), TipRecipient("bob", Fraction(1))
    assert plan_legs(MERCHANT_WALLET, 900, 101, [alice, bob]) == (
        PlannedLeg(LegKind.BASE, MERCHANT_WALLET, 900, 0),
        PlannedLeg(LegKind.TIP, "alice", 51, 1),
        PlannedLeg(LegKind.TIP, "bob", 50, 2),
    )


def test_plan_without_tip_is_a_single_base_leg():
    assert plan_legs(MERCHANT_WALLET, 1000, 0, [TipRecipient("alice", Fraction(1))]) == (
        PlannedLeg(LegKind.BASE, MERCHANT_WALLET, 1000, 0),
    )


def test_plan_without_base_starts_tip_positions_at_zero():
    assert plan_legs(MERCHANT_WALLET, 0, 5, [TipRecipient("alice", Fraction(1))]) == (
        PlannedLeg(LegKind.TIP, "alice", 5, 0),
    )


def test_plan_refuses_a_negative_base():
    with pytest.raises(ValueError):
        plan_legs(MERCHANT_WALLET, -1, 5, [TipRecipient("alice", Fraction(1))])


@given(base=st.integers(min_value=0, max_value=10_000_000), tip=tips, recipients=recipient_lists())
def test_plan_legs_add_up_to_the_invoice(base, tip, recipients):
    legs = plan_legs(MERCHANT_WALLET, base, tip, recipients)
    assert sum(leg.sats for leg in legs) == base + tip
    assert [leg.position for leg in legs] == list(range(len(legs)))
    assert all(leg.sats > 0 for leg in legs)
    assert sum(leg.kind is LegKind.BASE for leg in legs) == (1 if base > 0 else 0)
    if tip == 0:
        assert all(leg.kind is LegKind.BASE for leg in legs)
