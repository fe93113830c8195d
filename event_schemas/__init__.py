"""The event contract shared by the command side, the projectors and the query side."""
