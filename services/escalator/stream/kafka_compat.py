"""The one reach into librdkafka's private formats (confluent-kafka 2.16 / librdkafka 2.16, checked by
``tests/integration/test_kafka_compat.py``, which fails loudly when it moves).

``group_generation``: confluent-kafka does not expose the consumer group generation of the current assignment;
``Consumer.consumer_group_metadata()`` returns librdkafka's serialised ``rd_kafka_consumer_group_metadata_t``
(meant for ``send_offsets_to_transaction``): the magic ``CGMDv2:``, then the generation id as a 32-bit integer in
the host's byte order (librdkafka copies the struct field as it is), then the group id, member id and group
instance id. The processor stamps its ownership markers with this generation (``changelog``); when the format is
not recognised it returns -1 ("unknown"), and ownership falls back to the log-order rule alone.
"""

from __future__ import annotations

import struct

__all__ = ["CGMD_MAGIC", "group_generation"]

CGMD_MAGIC = b"CGMDv2:"
_GENERATION = struct.Struct("=i")  # native byte order, as librdkafka writes it


def group_generation(metadata: bytes | bytearray | object) -> int:
    """The generation id inside serialised consumer group metadata, or -1 if the format is not the known one."""
    if not isinstance(metadata, bytes | bytearray):
        return -1
    raw = bytes(metadata)
    if not raw.startswith(CGMD_MAGIC) or len(raw) < len(CGMD_MAGIC) + _GENERATION.size:
        return -1
    (generation,) = _GENERATION.unpack_from(raw, len(CGMD_MAGIC))
    return int(generation)
