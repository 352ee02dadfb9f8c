"""The gateway's mapping file: vendor priorities, statuses, group names and field paths -> v1 values.

``load_mapping_text(text, filename)`` is pure; every error names the file, line, column and field, the way policy
files report theirs (the same YAML reader, :class:`escalator.core.policy.PolicyIssue`)::

    mappings.yaml:9:33: zendesk.priorities.urgent: Input should be 'low', 'normal', 'high' or 'urgent'

A source missing from the file keeps the packaged defaults (``escalator/gateway/mappings.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..core.policy import PolicyError, PolicyIssue, validate_yaml
from ..core.vocabulary import Priority, Status

__all__ = [
    "DEFAULT_MAPPING_FILE",
    "SOURCES",
    "MappingError",
    "MappingFileSpec",
    "Mappings",
    "SourceMapping",
    "default_mappings",
    "load_mapping_file",
    "load_mapping_text",
]

#: The vendor sources of the gateway, in the order the file lists them.
SOURCES = ("zendesk", "jira", "servicenow")
DEFAULT_MAPPING_FILE = "mappings.yaml"

Text = Annotated[str, Field(min_length=1, max_length=1024)]
Attribute = Literal["group", "channel", "product", "category", "requester_tier"]


def _folded(v: object) -> object:
    """Vendor words compared without case: the keys are stored lower-case and trimmed."""
    if isinstance(v, dict):
        return {str(k).strip().lower(): value for k, value in v.items()}
    return v


def _as_text_keys(v: object) -> object:
    """Group ids are text, also when YAML reads them as numbers."""
    if isinstance(v, dict):
        return {str(k): value for k, value in v.items()}
    return v


class SourceMapping(BaseModel):
    """How one vendor's values become v1 values. Keys of ``priorities``, ``statuses`` and ``status_categories`` are
    compared without case; ``attributes`` and ``fields`` map a v1 name to a dotted path into the vendor's body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Text
    ticket_prefix: str = Field(default="", max_length=100)
    priorities: Annotated[dict[str, Priority], BeforeValidator(_folded), Field(min_length=1)]
    default_priority: Priority | None = None
    statuses: Annotated[dict[str, Status], BeforeValidator(_folded), Field(min_length=1)]
    status_categories: Annotated[dict[str, Status], BeforeValidator(_folded)] = Field(default_factory=dict)
    attributes: dict[Attribute, Text] = Field(default_factory=dict)
    fields: dict[Text, Text] = Field(default_factory=dict)
    groups: Annotated[dict[str, Text], BeforeValidator(_as_text_keys)] = Field(default_factory=dict)


class MappingFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    zendesk: SourceMapping | None = None
    jira: SourceMapping | None = None
    servicenow: SourceMapping | None = None


@dataclass(frozen=True)
class Mappings:
    """The mapping of every vendor source, and the file it came from."""

    zendesk: SourceMapping
    jira: SourceMapping
    servicenow: SourceMapping
    filename: str


class MappingError(ValueError):
    """A mapping file that cannot be used; ``issues`` lists every problem, each with file, line and field."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _spec(text: str, filename: str) -> MappingFileSpec:
    try:
        spec, _where = validate_yaml(
            text, filename, MappingFileSpec, "the mapping file must be a YAML mapping with 'version: 1'"
        )
    except PolicyError as exc:  # same issues, the gateway's error type
        raise MappingError(exc.issues) from None
    return spec


def load_mapping_text(text: str, filename: str = "<mappings>", defaults: Mappings | None = None) -> Mappings:
    """Parse and validate a mapping file's text; sources it leaves out come from ``defaults`` (the packaged file)."""
    spec = _spec(text, filename)
    chosen = {name: getattr(spec, name) for name in SOURCES}
    if any(v is None for v in chosen.values()):
        base = defaults if defaults is not None else default_mappings()
        chosen = {name: value if value is not None else getattr(base, name) for name, value in chosen.items()}
    return Mappings(chosen["zendesk"], chosen["jira"], chosen["servicenow"], filename)


def default_mappings() -> Mappings:
    """The packaged defaults (``escalator/gateway/mappings.yaml``); every source is in it."""
    text = resources.files(__package__).joinpath(DEFAULT_MAPPING_FILE).read_text(encoding="utf-8")
    spec = _spec(text, DEFAULT_MAPPING_FILE)
    assert spec.zendesk and spec.jira and spec.servicenow, "the packaged mapping file names every source"
    return Mappings(spec.zendesk, spec.jira, spec.servicenow, DEFAULT_MAPPING_FILE)


def load_mapping_file(path: Path | None) -> Mappings:
    """The mapping file at ``path`` (``None``: the packaged defaults). Raises :class:`MappingError`."""
    if path is None:
        return default_mappings()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError([PolicyIssue(str(path), None, None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return load_mapping_text(text, str(path))
