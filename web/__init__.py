"""HTTP plumbing shared by every FastAPI app: JSON error bodies, health."""
