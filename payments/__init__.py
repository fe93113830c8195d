"""Operator commands of the payments context (`python -m payments`)."""
