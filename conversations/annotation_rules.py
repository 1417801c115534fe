"""What an annotation posted to the API may hold (issue 17), and the `AnnotationIn` it becomes.

Validated by pydantic as the conversations are (conversations/ingest_rules.py), with the same
rules for what both have: a timestamp as a conversation's (ISO 8601, naive means UTC, years
1900-9000, at most 5 minutes ahead, default the time of receipt) and channel and bot version
as a conversation's labels (trimmed, then at most 64 characters), so that an annotation scoped
to a channel names it as the conversations do. Errors come in the ingest's words and shape.
Strict JSON types: a new API has no senders to keep lenient for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from conversations.ingest_rules import (
    NO_NUL,
    IngestInvalid,
    Label,
    Timestamp,
    errors_of,
    validation_context,
)
from conversations.models import (
    ANNOTATION_TITLE_MAX_LENGTH,
    EXTERNAL_ID_MAX_LENGTH,
    LABEL_MAX_LENGTH,
    AnnotationKind,
)
from conversations.services import AnnotationIn


def _scope(what: str) -> Any:
    return Annotated[
        Label | None,
        Field(
            description=f"Only this {what}, named as the conversations name it (trimmed, at most "
            f"{LABEL_MAX_LENGTH} characters). Null, empty or left out: every {what}.",
            json_schema_extra={"maxLength": LABEL_MAX_LENGTH},
        ),
    ]


class AnnotationInput(TypedDict):
    """An annotation as the release process (or any other sender) posts it. Unknown fields are
    ignored, as for a conversation."""

    __pydantic_config__ = ConfigDict(extra="ignore")

    timestamp: NotRequired[
        Annotated[
            Timestamp,
            Field(
                description="The moment, ISO 8601; naive means UTC; at most 5 minutes ahead; "
                "default: time of receipt."
            ),
        ]
    ]
    title: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=ANNOTATION_TITLE_MAX_LENGTH, pattern=NO_NUL
        ),
        Field(description=f"Trimmed, 1-{ANNOTATION_TITLE_MAX_LENGTH} characters."),
    ]
    kind: Literal[tuple(AnnotationKind.values)]  # type: ignore[valid-type]
    channel: NotRequired[_scope("channel")]
    bot_version: NotRequired[_scope("bot version")]
    external_id: NotRequired[
        Annotated[
            Annotated[str, StringConstraints(min_length=1, max_length=EXTERNAL_ID_MAX_LENGTH, pattern=NO_NUL)]
            | None,
            Field(
                description="Your own id for it, kept exactly as sent: posting the same one again "
                "returns the stored annotation, unchanged (200), instead of adding another."
            ),
        ]
    ]


_ANNOTATION = TypeAdapter(AnnotationInput)


def annotation_from_body(data: Any, *, received_at: datetime, now: datetime | None = None) -> AnnotationIn:
    """One parsed JSON object as an AnnotationIn; raises ingest_rules.IngestInvalid.

    `received_at` is the timestamp when none is given and, unless `now` is, the clock of the
    5-minute future limit.
    """
    try:
        item = _ANNOTATION.validate_python(data, context=validation_context(received_at, now))
    except ValidationError as error:
        raise IngestInvalid(errors_of(error, per_item=False)) from None
    return AnnotationIn(
        timestamp=item.get("timestamp") or received_at,
        title=item["title"],
        kind=item["kind"],
        channel=item.get("channel") or "",
        bot_version=item.get("bot_version") or "",
        external_id=item.get("external_id") or "",
    )
