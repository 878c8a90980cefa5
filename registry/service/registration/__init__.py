"""Bringing new bytes in: adapters and base models, checked against their base before any row is written."""
