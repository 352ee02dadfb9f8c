"""Pure mappers: one vendor webhook body -> the v1 ticket events it means (CloudEvents documents, not yet bytes).

No I/O, no clock: an event's time and id come from the vendor's own payload (or delivery header), so an upstream
retry maps to identical events, which escalator de-duplicates by source and id. A body that cannot be mapped raises
:class:`Unmappable` naming the field; a vendor event escalator has no use for maps to no events.

Shapes (sample bodies in tests/data/webhooks/, provenance in docs/gateway.md):

* Zendesk event-subscribed ticket webhooks: ``{"type": "zen:event-type:ticket.<x>", "id", "time", "account_id",
  "detail": {the ticket}, "event": {what changed}}``.
* Jira / Jira Service Management: ``{"webhookEvent", "timestamp" (epoch ms), "issue": {"id", "key", "self",
  "fields"}, "changelog": {"items": [...]}, "comment": {...}}``.
* ServiceNow: the JSON a business rule posts (documented in docs/gateway.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from ..core.timefmt import format_ms, parse_rfc3339_ms
from .mapfile import SourceMapping

__all__ = [
    "MAPPING_REASONS",
    "Unmappable",
    "envelope",
    "map_jira",
    "map_servicenow",
    "map_zendesk",
]

#: Why a body could not be mapped (the ``reason`` label of ``escalator_gateway_mapping_failures_total``; the
#: decoder's reasons are added when a mapped event fails the v1 contract).
MAPPING_REASONS: Final[tuple[str, ...]] = ("invalid_json", "missing_field", "invalid_value", "unknown_value")

ZENDESK_PREFIX: Final = "zen:event-type:"
Doc = dict[str, Any]


class Unmappable(ValueError):
    """A body that does not map to v1 events: ``field`` is the dotted path in the body, ``reason`` one of
    :data:`MAPPING_REASONS` (or a decoder reason)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        self.field = field
        self.reason = reason
        self.message = message
        super().__init__(f"{field}: {message}")


def envelope(etype: str, event_id: str, source: str, time_ms: int, subject: str, data: Doc) -> Doc:
    """A structured-mode CloudEvents document of one v1 ticket event."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": etype,
        "time": format_ms(time_ms),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


# --- reading the vendor's body ----------------------------------------------------------------------------------


def _get(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` (a number indexes a list), ``None`` when any step is missing."""
    node = doc
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _required(doc: Any, path: str) -> Any:
    value = _get(doc, path)
    if value is None or value == "":
        raise Unmappable(path, "missing_field", "required field is missing")
    return value


def _object(doc: Any, path: str) -> Doc:
    value = doc if path == "" else _required(doc, path)
    if not isinstance(value, dict):
        raise Unmappable(path or "(body)", "invalid_value", f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(doc: Any, path: str) -> str:
    value = _required(doc, path)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unmappable(path, "invalid_value", f"expected a string or an integer, got {type(value).__name__}")
    return str(value)


def _optional_id(value: Any) -> str | None:
    """A vendor reference that may be absent, empty, 0 or an object with an ``id``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None or isinstance(value, bool) or value in ("", 0, "0"):
        return None
    return str(value)


def _lookup(table: Mapping[str, str], value: Any, path: str, what: str) -> str:
    key = str(value).strip().lower()
    found = table.get(key)
    if found is None:
        known = ", ".join(sorted(table)) or "none"
        raise Unmappable(path, "unknown_value", f"unknown {what} {value!r} (the mapping file knows {known})")
    return found


def _priority(spec: SourceMapping, value: Any, path: str) -> str:
    if value is None or value == "":
        if spec.default_priority is None:
            raise Unmappable(path, "missing_field", "required field is missing (no default_priority mapped)")
        return spec.default_priority
    return _lookup(spec.priorities, value, path, "priority")


def _group(spec: SourceMapping, value: Any) -> str | None:
    group = _optional_id(value)
    return None if group is None else spec.groups.get(group, group)


def _fields(spec: SourceMapping, doc: Doc) -> Doc:
    out: Doc = {}
    for name, path in spec.fields.items():
        value = _get(doc, path)
        if isinstance(value, str | int | float | bool) and value != "":
            out[name] = value
    return out


def _created_data(spec: SourceMapping, doc: Doc, base: Doc) -> Doc:
    """``base`` (priority, status, requester, ...) plus the configured attributes and fields."""
    data = dict(base)
    for name, path in spec.attributes.items():
        value = _get(doc, path)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            if name == "requester_tier":
                data["requester"] = {**data["requester"], "tier": str(value)}
            else:
                data[name] = str(value)
    fields = _fields(spec, doc)
    if fields:
        data["fields"] = fields
    return {k: v for k, v in data.items() if v is not None}


def _tags(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Unmappable(path, "invalid_value", "expected a list of strings")
    return list(value)


def _timestamp(doc: Doc, path: str) -> int:
    text = _text(doc, path)
    try:
        return parse_rfc3339_ms(text)
    except ValueError:
        pass
    try:  # ServiceNow's GlideDateTime value, "2026-11-20 10:00:00", is UTC
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise Unmappable(path, "invalid_value", f"not a timestamp: {text!r}") from None


# --- Zendesk ----------------------------------------------------------------------------------------------------


def _zendesk_created(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    status = detail.get("status")
    base = {
        "priority": _priority(spec, detail.get("priority"), "detail.priority"),
        "status": "new" if status in (None, "") else _lookup(spec.statuses, status, "detail.status", "status"),
        "requester": {"id": _text(detail, "requester_id")},
        "group": _group(spec, detail.get("group_id")),
        "assignee": _optional_id(detail.get("assignee_id")),
        "tags": _tags(detail.get("tags"), "detail.tags"),
    }
    return "ticket.created", _created_data(spec, doc, base)


def _zendesk_status(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    return "ticket.status_changed", {
        "status": _lookup(spec.statuses, _required(doc, "event.current"), "event.current", "status")
    }


def _zendesk_priority(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    return "ticket.updated", {"changes": {"priority": _priority(spec, _get(doc, "event.current"), "event.current")}}


def _zendesk_group(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    return "ticket.updated", {"changes": {"group": _group(spec, _get(doc, "event.current"))}}


def _zendesk_assignee(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    return "ticket.updated", {"changes": {"assignee": _optional_id(_get(doc, "event.current"))}}


def _zendesk_tags(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    return "ticket.updated", {"changes": {"tags": _tags(detail.get("tags"), "detail.tags")}}


def _zendesk_comment(spec: SourceMapping, doc: Doc, detail: Doc) -> tuple[str, Doc]:
    comment = _object(doc, "event.comment")
    staff = _get(comment, "author.is_staff")
    if not isinstance(staff, bool):
        raise Unmappable("event.comment.author.is_staff", "missing_field", "required field is missing")
    public = comment.get("is_public", True)
    if not isinstance(public, bool):
        raise Unmappable("event.comment.is_public", "invalid_value", "expected true or false")
    return "ticket.commented", {"author": "agent" if staff else "requester", "public": public}


_ZENDESK: Final[dict[str, Callable[[SourceMapping, Doc, Doc], tuple[str, Doc]]]] = {
    "ticket.created": _zendesk_created,
    "ticket.status_changed": _zendesk_status,
    "ticket.priority_changed": _zendesk_priority,
    "ticket.group_assignment_changed": _zendesk_group,
    "ticket.agent_assignment_changed": _zendesk_assignee,
    "ticket.tags_changed": _zendesk_tags,
    "ticket.comment_added": _zendesk_comment,
}


def map_zendesk(body: Any, headers: Mapping[str, str], spec: SourceMapping) -> list[Doc]:
    """A Zendesk event-subscribed ticket webhook -> at most one v1 event, with the Zendesk event's own id."""
    doc = _object(body, "")
    kind = _text(doc, "type").removeprefix(ZENDESK_PREFIX)
    handler = _ZENDESK.get(kind)
    if handler is None:
        return []
    detail = _object(doc, "detail")
    source = spec.source.replace("{account_id}", _text(doc, "account_id"))
    etype, data = handler(spec, doc, detail)
    subject = spec.ticket_prefix + _text(detail, "id")
    return [envelope(etype, _text(doc, "id"), source, _timestamp(doc, "time"), subject, data)]


# --- Jira -------------------------------------------------------------------------------------------------------

JIRA_DELIVERY_HEADER: Final = "X-Atlassian-Webhook-Identifier"


def _jira_user(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    for key in ("accountId", "name", "key", "emailAddress"):  # Cloud has accountId; Server / Data Center name
        if isinstance(value.get(key), str) and value[key]:
            return str(value[key])
    return None


def _jira_status(spec: SourceMapping, fields: Doc, path: str) -> str:
    name = _get(fields, "status.name")
    if name is not None and str(name).strip().lower() in spec.statuses:
        return spec.statuses[str(name).strip().lower()]
    category = _get(fields, "status.statusCategory.key")
    if category is not None and str(category).lower() in spec.status_categories:
        return spec.status_categories[str(category).lower()]
    return _lookup(spec.statuses, name, path, "status")


def _jira_created(spec: SourceMapping, doc: Doc, fields: Doc) -> list[tuple[str, str, Doc]]:
    requester = _jira_user(fields.get("reporter")) or _jira_user(fields.get("creator"))
    if requester is None:
        raise Unmappable("issue.fields.reporter.accountId", "missing_field", "required field is missing")
    base = {
        "priority": _priority(spec, _get(fields, "priority.name"), "issue.fields.priority.name"),
        "status": _jira_status(spec, fields, "issue.fields.status.name"),
        "requester": {"id": requester},
        "assignee": _jira_user(fields.get("assignee")),
        "tags": _tags(fields.get("labels"), "issue.fields.labels"),
    }
    return [("created", "ticket.created", _created_data(spec, doc, base))]


def _jira_updated(spec: SourceMapping, doc: Doc, fields: Doc) -> list[tuple[str, str, Doc]]:
    items = _get(doc, "changelog.items")
    if not isinstance(items, list):
        raise Unmappable("changelog.items", "missing_field", "required field is missing")
    out: list[tuple[str, str, Doc]] = []
    changes: Doc = {}
    for i, item in enumerate(items):
        path = f"changelog.items.{i}"
        name = str(_get(item, "fieldId") or _get(item, "field") or "").lower()
        if name == "status":
            status = _lookup(spec.statuses | spec.status_categories, _required(item, "toString"), path, "status")
            out.append(("status", "ticket.status_changed", {"status": status}))
        elif name == "priority":
            changes["priority"] = _priority(spec, _get(item, "toString"), f"{path}.toString")
        elif name == "assignee":
            changes["assignee"] = _optional_id(_get(item, "to"))
        elif name == "labels":
            changes["tags"] = _tags(fields.get("labels"), "issue.fields.labels")
    if changes:
        out.append(("updated", "ticket.updated", {"changes": changes}))
    return out


def _jira_comment(spec: SourceMapping, doc: Doc, fields: Doc) -> list[tuple[str, str, Doc]]:
    comment = _object(doc, "comment")
    author = _jira_user(comment.get("author"))
    if author is None:
        raise Unmappable("comment.author.accountId", "missing_field", "required field is missing")
    reporter = _jira_user(fields.get("reporter"))
    public = comment.get("jsdPublic", True)  # Jira Service Management: false for an internal note
    if not isinstance(public, bool):
        raise Unmappable("comment.jsdPublic", "invalid_value", "expected true or false")
    role = "requester" if author == reporter else "agent"
    return [("comment", "ticket.commented", {"author": role, "public": public})]


_JIRA: Final[dict[str, Callable[[SourceMapping, Doc, Doc], list[tuple[str, str, Doc]]]]] = {
    "jira:issue_created": _jira_created,
    "jira:issue_updated": _jira_updated,
    "comment_created": _jira_comment,
}


def map_jira(body: Any, headers: Mapping[str, str], spec: SourceMapping) -> list[Doc]:
    """A Jira / JSM webhook -> v1 events. Ids: the delivery's ``X-Atlassian-Webhook-Identifier`` (the same on
    every retry), else ``webhookEvent:timestamp:issue id``, plus what the event says (``:status``, ``:updated``)."""
    doc = _object(body, "")
    kind = _text(doc, "webhookEvent")
    handler = _JIRA.get(kind)
    if handler is None:
        return []
    timestamp = _required(doc, "timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise Unmappable("timestamp", "invalid_value", "expected epoch milliseconds")
    issue = _object(doc, "issue")
    fields = _object(issue, "fields")
    site = urlsplit(str(issue.get("self") or "")).hostname or "jira"
    source = spec.source.replace("{site}", site)
    subject = spec.ticket_prefix + _text(issue, "key")
    base = headers.get(JIRA_DELIVERY_HEADER) or f"{kind}:{timestamp}:{_text(issue, 'id')}"
    return [
        envelope(etype, f"{base}:{suffix}", source, timestamp, subject, data)
        for suffix, etype, data in handler(spec, doc, fields)
    ]


# --- ServiceNow -------------------------------------------------------------------------------------------------

_SERVICENOW_UPDATES: Final = {"priority": "priority", "assignment_group": "group", "assigned_to": "assignee"}


def _servicenow_changes(spec: SourceMapping, doc: Doc, changed: list[str]) -> Doc:
    changes: Doc = {}
    for name, attribute in _SERVICENOW_UPDATES.items():
        if name not in changed:
            continue
        value = doc.get(name)
        if attribute == "priority":
            changes[attribute] = _priority(spec, value, name)
        elif attribute == "group":
            changes[attribute] = _group(spec, value)
        else:
            changes[attribute] = _optional_id(value)
    for attribute, path in spec.attributes.items():  # e.g. category: category
        if attribute in ("category", "product") and path in changed:
            value = _get(doc, path)
            changes[attribute] = None if value in (None, "") else str(value)
    return changes


def _servicenow_events(spec: SourceMapping, doc: Doc) -> list[tuple[str, str, Doc]]:
    operation = _text(doc, "operation")
    if operation == "insert":
        base = {
            "priority": _priority(spec, doc.get("priority"), "priority"),
            "status": _lookup(spec.statuses, _required(doc, "state"), "state", "state"),
            "requester": {"id": _text(doc, "caller_id")},
            "group": _group(spec, doc.get("assignment_group")),
            "assignee": _optional_id(doc.get("assigned_to")),
        }
        return [("created", "ticket.created", _created_data(spec, doc, base))]
    if operation != "update":
        raise Unmappable("operation", "unknown_value", f"expected insert or update, got {operation!r}")
    changed = doc.get("changed", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise Unmappable("changed", "invalid_value", "expected a list of field names")
    out: list[tuple[str, str, Doc]] = []
    if "state" in changed:
        status = _lookup(spec.statuses, _required(doc, "state"), "state", "state")
        out.append(("status", "ticket.status_changed", {"status": status}))
    changes = _servicenow_changes(spec, doc, changed)
    if changes:
        out.append(("updated", "ticket.updated", {"changes": changes}))
    if doc.get("comment") is not None:
        comment = _object(doc, "comment")
        kind = _lookup(
            {"comments": "public", "work_notes": "private"}, _required(comment, "kind"), "comment.kind", "kind"
        )
        by_caller = comment.get("by_caller", False)
        if not isinstance(by_caller, bool):
            raise Unmappable("comment.by_caller", "invalid_value", "expected true or false")
        data = {"author": "requester" if by_caller else "agent", "public": kind == "public"}
        out.append(("comment", "ticket.commented", data))
    return out


def map_servicenow(body: Any, headers: Mapping[str, str], spec: SourceMapping) -> list[Doc]:
    """The documented ServiceNow business-rule body -> v1 events, ids ``sys_id:sys_mod_count:<what>``."""
    doc = _object(body, "")
    source = spec.source.replace("{instance}", _text(doc, "instance"))
    subject = spec.ticket_prefix + _text(doc, "number")
    base = f"{_text(doc, 'sys_id')}:{_text(doc, 'sys_mod_count')}"
    time_ms = _timestamp(doc, "sys_updated_on")
    return [
        envelope(etype, f"{base}:{suffix}", source, time_ms, subject, data)
        for suffix, etype, data in _servicenow_events(spec, doc)
    ]
