"""Importers: real ticket logs in, v1 ticket events (JSON Lines) out. See :mod:`.servicenow` and :mod:`.helpdesk`."""

from .common import BadRow, EventWriter, ImportStats
from .helpdesk import import_helpdesk
from .servicenow import import_servicenow

__all__ = ["BadRow", "EventWriter", "ImportStats", "import_helpdesk", "import_servicenow"]
