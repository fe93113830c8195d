"""Rate limits that hold across instances: attempts counted per key in fixed windows, in PostgreSQL."""
