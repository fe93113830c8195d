"""The users query side."""
