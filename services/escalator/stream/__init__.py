"""The batched stream processor behind ``escalator worker``.

It consumes ticket events in batches, applies the pure core to each touched ticket's state (loaded once per
batch), fires due deadlines from a per-partition index inside the same loop, produces every output of the batch
without awaiting each send, writes each touched state once, and commits input offsets only after the batch's
outputs and state changes are flushed (at-least-once; every output id is deterministic, so redelivery is harmless).

Layout (each module is tested on its own, with in-memory fakes of the Kafka seams):

* ``ports``     -- the small interfaces the processor needs from Kafka and storage (consumer, producer, changelog
                   reader, partition store) and in-memory fakes of them;
* ``codec``     -- store values (a fixed header the deadline index and gauges read without decoding the state) and
                   changelog record headers;
* ``store``     -- per-partition state stores (memory, RocksDB via rocksdict) with an atomic checkpoint;
* ``changelog`` -- ownership markers, fencing of zombie writes, recovery and the contiguity check;
* ``index``     -- the per-partition deadline heaps and the incrementally maintained gauges;
* ``tickets``   -- the ticket processor of one partition: events and due deadlines in, state changes and outputs out;
* ``incidents`` -- incident windows fed in event-time order across all source partitions (watermarks);
* ``runtime``   -- the batch loop: rebalances, recovery, produce -> flush -> store -> commit, freeze detection;
* ``kafka``     -- the confluent-kafka (librdkafka) implementations of the ports; ``kafka_compat`` holds the one
                   reach into librdkafka's private formats.

Nothing here imports faust; only ``kafka`` and ``kafka_compat`` import confluent_kafka.
"""

__all__: list[str] = []
