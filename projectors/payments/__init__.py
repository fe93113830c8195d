"""The payments context's read models (in the payments database)."""
