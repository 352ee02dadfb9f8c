"""Published policy versions: the records of the policies topic (``escalator policy publish``), read back by every
worker (``escalator.service.policies``) and listed by ``escalator policy versions``.

A record's value is a versioned JSON document (:class:`PolicyVersionRecord`, schema
``schemas/v1/policy-version.json``) carrying the policy file's YAML text, its version (the content hash, as
``policy check`` prints it), the instant it takes effect, whom it applies to, when and from which file it was
published. The key is ``{version}@{effective_from}/{applies_to}``: publishing the same file for the same instant
twice is one version (and compaction keeps one record of it); republishing an older file with a new instant (a
roll back) is a new version record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .core.policy import PolicyError, load_policy_text
from .core.timefmt import format_ms, parse_rfc3339_ms
from .core.versions import PolicyVersion
from .core.vocabulary import AppliesTo, PolicyRecordReject
from .policy_file import MAX_POLICY_BYTES, check_yaml_bounds, load_policy_file

__all__ = [
    "PolicyRecordError",
    "PolicyVersionRecord",
    "decode_policy_record",
    "publish_record",
    "read_policy_record",
    "record_key",
]

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


class PolicyVersionRecord(BaseModel):
    """One published policy version (the value of a policies-topic record)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal["escalator.policy-version"] = Field(description="What this record is.")
    format_version: Literal[1] = Field(description="The version of this record's format.")
    version: str = Field(
        min_length=1, max_length=64, description="The policy file's version (content hash), as `policy check` says."
    )
    effective_from: str = Field(pattern=RFC3339, description="From this instant on (event time) the version applies.")
    applies_to: AppliesTo = Field(
        description="open_tickets: every open ticket is re-planned under it at effective_from; new_tickets: only "
        "tickets created from then on use it."
    )
    published_at: str = Field(pattern=RFC3339, description="When it was published (wall clock of the publisher).")
    file: str = Field(max_length=500, description="The published file's name (for people).")
    text: str = Field(max_length=MAX_POLICY_BYTES, description="The policy file's YAML text.")


class PolicyRecordError(Exception):
    """A policies-topic record the worker does not use (``reason`` is a :data:`PolicyRecordReject`)."""

    def __init__(self, reason: PolicyRecordReject, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: PolicyRecordReject = reason
        self.detail = detail


def publish_record(
    path: str | Path, effective_ms: int, applies_to: AppliesTo, published_ms: int
) -> tuple[bytes, bytes, PolicyVersionRecord]:
    """Validate a policy file (raises :class:`PolicyError` with file:line errors, as ``policy check``) and build
    its record: (key, value, record)."""
    policies = load_policy_file(path)
    text = Path(path).read_text(encoding="utf-8")
    record = PolicyVersionRecord(
        format="escalator.policy-version",
        format_version=1,
        version=policies.version,
        effective_from=format_ms(effective_ms),
        applies_to=applies_to,
        published_at=format_ms(published_ms),
        file=Path(path).name,
        text=text,
    )
    value = orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return record_key(record).encode(), value, record


def record_key(record: PolicyVersionRecord) -> str:
    return f"{record.version}@{record.effective_from}/{record.applies_to}"


def read_policy_record(value: bytes | None) -> PolicyVersionRecord:
    """The record in a value, or :class:`PolicyRecordError` (``undecodable``, ``schema``)."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise PolicyRecordError("undecodable", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyRecordError("undecodable", "not a JSON object")
    try:
        return PolicyVersionRecord.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise PolicyRecordError("schema", f"{where}: {first.get('msg')}") from None


def decode_policy_record(value: bytes | None, seq: int) -> tuple[PolicyVersionRecord, PolicyVersion]:
    """A record's policy version, compiled (``seq``: its position on the topic), or :class:`PolicyRecordError`."""
    record = read_policy_record(value)
    try:
        effective_ms = parse_rfc3339_ms(record.effective_from)
        published_ms = parse_rfc3339_ms(record.published_at)
    except ValueError as exc:
        raise PolicyRecordError("schema", str(exc)) from None
    name = f"{record.file} (published {record.published_at})"
    try:
        check_yaml_bounds(record.text, record.file)
        policies = load_policy_text(record.text, record.file)
    except PolicyError as exc:
        raise PolicyRecordError("invalid_policy", "; ".join(str(i) for i in exc.issues[:3])) from None
    except RecursionError:
        raise PolicyRecordError("invalid_policy", "too deeply nested") from None
    if policies.version != record.version:
        raise PolicyRecordError(
            "version_mismatch", f"the record says {record.version}, its text is version {policies.version}"
        )
    return record, PolicyVersion(policies, effective_ms, record.applies_to, seq, published_ms, name)
