"""Reads and edits of what is registered: versions, aliases, lifecycle, lineage, audit, digests."""
