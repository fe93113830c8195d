"""The payments query side: payments per order."""
