"""Developer tools: the local stack without Docker and the local servers it starts."""
