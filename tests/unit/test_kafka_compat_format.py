"""escalator.stream.kafka_compat without a broker: the serialised consumer-group metadata format it reads."""

from __future__ import annotations

import struct

from escalator.stream.kafka_compat import CGMD_MAGIC, group_generation


def test_the_generation_is_read_in_host_byte_order_after_the_magic() -> None:
    raw = CGMD_MAGIC + struct.pack("=i", 7) + b"group\x00member-1\x00\x01"
    assert group_generation(raw) == 7
    assert group_generation(CGMD_MAGIC + struct.pack("=i", 0) + b"g\x00m\x00") == 0


def test_an_unknown_format_means_unknown() -> None:
    assert group_generation(b"CGMDv3:\x01\x00\x00\x00g\x00") == -1
    assert group_generation(CGMD_MAGIC + b"\x01") == -1
    assert group_generation(None) == -1
