"""The read side: FastAPI apps that serve the projections."""
