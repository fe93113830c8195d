"""The write side: validate commands, decide against aggregate state, append events to Kafka."""
