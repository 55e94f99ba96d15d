"""Split profiles (DESIGN §4, issue 15): a merchant's saved tip splits, by its key in X-API-KEY.

Every verb is scoped to the caller's key fingerprints, so another merchant's profile answers
404 exactly as an id that never existed. A profile's recipients are checked when it is saved by
create-invoice's own PayoutPlanner (same rules, same codes); a sale naming the profile checks
them again.
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, Response, jsonify

from service.api.body import json_body
from service.api.fields import shared_schema
from service.api.payment_errors import blink_unavailable, payment_error_response
from service.api.profile_schemas import (
    SplitProfileListSchema,
    SplitProfileRequestSchema,
    SplitProfileSchema,
)
from service.api.throttle import NO_STORE, accepted_merchant_key, client_address, enforce_rate_limits
from service.blink import BlinkUnavailable
from service.context import services
from service.domain.errors import PaymentError
from service.domain.profiles import ProfileInput
from service.errors import Conflict, NotFound

profiles_blueprint = Blueprint("profiles", __name__)
profiles_blueprint.register_error_handler(PaymentError, payment_error_response)

_NOT_FOUND = ("split_profile_not_found", "You have no split profile with this id.")


@profiles_blueprint.get("/api/split-profiles")
def list_profiles():
    """The calling merchant's split profiles.
    ---
    get:
      operationId: listSplitProfiles
      tags: [split-profiles]
      summary: The calling merchant's split profiles, oldest first
      parameters:
        - {in: header, name: X-API-KEY, required: true, schema: {type: string},
           description: "The merchant's Blink API key (READ scope is enough)"}
      responses:
        200: {description: The profiles, content: {application/json: {schema: SplitProfileList}}}
        400: "merchant_key_cannot_read: the key lacks the READ scope"
        401: "unauthorized: no API key, or Blink does not accept it"
      errors: [429, 502, 503, 504]
    """
    fingerprints = accepted_merchant_key()
    profiles = services().profiles.list(fingerprints)
    return jsonify(SplitProfileListSchema().dump({"profiles": profiles})), 200, NO_STORE


@profiles_blueprint.post("/api/split-profiles")
def create_profile():
    """Save a split profile.
    ---
    post:
      operationId: createSplitProfile
      tags: [split-profiles]
      summary: Save a named tip split for later sales (splitProfileId in create-invoice)
      parameters: [merchant_key]
      requestBody: {required: true, content: {application/json: {schema: SplitProfileRequest}}}
      responses:
        201: {description: The new profile, content: {application/json: {schema: SplitProfile}}}
        400: "The body broke a rule (`code`: invalid_profile_name, invalid_tip_recipients,
          invalid_username, unknown_tip_recipient, recipient_invalid, recipient_unreachable,
          tip_recipient_is_pos_wallet, merchant_key_cannot_read, ...)"
        401: "unauthorized: no API key, or Blink does not accept it"
        409: "too_many_split_profiles: delete one first"
      errors: [413, 415, 429, 502, 503, 504]
    """
    fingerprints, profile = _checked_request()
    created = services().profiles.create(fingerprints, profile)
    if created is None:
        raise Conflict("too_many_split_profiles", "You have as many split profiles as allowed; delete one.")
    return jsonify(SplitProfileSchema().dump(created)), 201, NO_STORE


@profiles_blueprint.put("/api/split-profiles/<profile_id>")
def replace_profile(profile_id: str):
    """Replace a split profile's name and recipients.
    ---
    put:
      operationId: replaceSplitProfile
      tags: [split-profiles]
      summary: Replace a profile's name and recipients; sales already made keep their split
      parameters: [profile_id, merchant_key]
      requestBody: {required: true, content: {application/json: {schema: SplitProfileRequest}}}
      responses:
        200: {description: The profile as it is now, content: {application/json: {schema: SplitProfile}}}
        400: "The body broke a rule (`code`: invalid_profile_name, invalid_tip_recipients,
          unknown_tip_recipient, recipient_unreachable, ...)"
        401: "unauthorized: no API key, or Blink does not accept it"
        404: "split_profile_not_found: none of this merchant's profiles has this id"
      errors: [413, 415, 429, 502, 503, 504]
    """
    fingerprints, profile = _checked_request()
    updated = services().profiles.update(fingerprints, profile_id, profile)
    if updated is None:
        raise NotFound(*_NOT_FOUND)
    return jsonify(SplitProfileSchema().dump(updated)), 200, NO_STORE


@profiles_blueprint.delete("/api/split-profiles/<profile_id>")
def delete_profile(profile_id: str):
    """Delete a split profile.
    ---
    delete:
      operationId: deleteSplitProfile
      tags: [split-profiles]
      summary: Delete a profile; sales already made with it keep their split
      parameters: [profile_id, merchant_key]
      responses:
        204: {description: Deleted}
        400: "merchant_key_cannot_read: the key lacks the READ scope"
        401: "unauthorized: no API key, or Blink does not accept it"
        404: "split_profile_not_found: none of this merchant's profiles has this id"
      errors: [429, 502, 503, 504]
    """
    fingerprints = accepted_merchant_key()
    if not services().profiles.delete(fingerprints, profile_id):
        raise NotFound(*_NOT_FOUND)
    return Response(status=204, headers=NO_STORE)


def _checked_request() -> tuple[tuple[str, ...], ProfileInput]:
    """The caller's fingerprints and the body's profile, its recipients checked as a sale checks
    them (PayoutPlanner.check: the same spelling merged, Blink users known, addresses reachable)."""
    svc = services()
    profile = shared_schema(SplitProfileRequestSchema).parse(json_body())
    fingerprints = accepted_merchant_key()
    enforce_rate_limits(
        "split-profiles",
        [("ip", client_address(), svc.config.rate_limit_per_ip_per_minute)],
        "Too many profile changes; wait a moment and try again.",
    )
    try:
        recipients = svc.payouts.check(profile.recipients, "recipients")
    except BlinkUnavailable as error:
        raise blink_unavailable(error) from None
    return fingerprints, dataclasses.replace(profile, recipients=recipients)
