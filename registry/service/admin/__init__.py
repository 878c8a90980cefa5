"""Operating the registry: API keys, garbage collection, first-time set-up."""
