"""The Kafka event store every context's command side uses."""
