"""The users context's command side: registration and login."""
