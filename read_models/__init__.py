"""The contract between the projectors, which write the read models, and the query sides, which only
read them: where each read model lives, and how a projector announces what it changed. Neither side
imports the other; both import this."""
