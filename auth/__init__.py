"""Issuing and verifying the platform's access tokens."""
