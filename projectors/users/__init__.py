"""The users read model."""
