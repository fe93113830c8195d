"""Process configuration, read once from the environment."""
