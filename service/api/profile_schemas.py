"""Split profiles on the wire: the body of POST/PUT /api/split-profiles and the answers.

Recipients load through create-invoice's own TipRecipientSchema and recipient_list, so a
profile accepts exactly the recipients a sale accepts, with the same codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from service.api.fields import ApiSchema, ErrorCode, NumberField, Text, WholeList, message
from service.api.request_schemas import RequestSchema
from service.api.sale_request import TipRecipientSchema, recipient_list
from service.domain.profiles import MAX_PROFILE_NAME_CHARS, MAX_PROFILE_RECIPIENTS, ProfileInput

INVALID_NAME = message(
    ErrorCode.INVALID_PROFILE_NAME,
    f"name must be 1 to {MAX_PROFILE_NAME_CHARS} characters of text (no NUL), not only spaces",
)
RECIPIENTS_COUNT = message(
    ErrorCode.INVALID_TIP_RECIPIENTS,
    f"recipients must be a list of 1 to {MAX_PROFILE_RECIPIENTS} objects with a username and a share",
)


def _usable_name(value: str) -> None:
    # "" is the Length rule's to refuse: one message, not the same one twice.
    if value and (not value.strip() or "\x00" in value):  # Postgres text cannot hold NUL
        raise ValidationError(INVALID_NAME)


class SplitProfileRequestSchema(RequestSchema):
    """POST and PUT /api/split-profiles → ProfileInput (a PUT replaces the whole profile)."""

    name = Text(
        required=True,
        validate=[validate.Length(min=1, max=MAX_PROFILE_NAME_CHARS, error=INVALID_NAME), _usable_name],
        error_messages={"required": INVALID_NAME, "null": INVALID_NAME, "invalid": INVALID_NAME},
    )
    recipients = WholeList(
        fields.Nested(TipRecipientSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_PROFILE_RECIPIENTS, error=RECIPIENTS_COUNT),
        error_messages={"required": RECIPIENTS_COUNT, "null": RECIPIENTS_COUNT, "invalid": RECIPIENTS_COUNT},
    )

    def build(
        self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
    ) -> ProfileInput | None:
        if errors or "name" not in data or "recipients" not in data:
            return None
        recipients = recipient_list(data["recipients"], "recipients", errors)
        return None if recipients is None else ProfileInput(data["name"].strip(), recipients)


class ProfileRecipientSchema(ApiSchema):
    username = fields.String(required=True)
    share = NumberField(required=True, metadata={"description": "relative weight"})


class SplitProfileSchema(ApiSchema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    name = fields.String(required=True)
    recipients = fields.List(fields.Nested(ProfileRecipientSchema), required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class SplitProfileListSchema(ApiSchema):
    profiles = fields.List(fields.Nested(SplitProfileSchema), required=True)


PROFILE_SCHEMAS: dict[str, Any] = {
    "SplitProfileRequest": SplitProfileRequestSchema,
    "SplitProfile": SplitProfileSchema,
    "SplitProfileList": SplitProfileListSchema,
}
