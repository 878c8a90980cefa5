"""Catalog reads as named statements, so that a read can run without building its statement.

A read names its statement (`ReadStatement`: the builder function and the shape it varies by) and binds
every value at execution. On the server the builder's Core statement runs through SQLAlchemy
(`CoreReads`). The CLI's local reads run the SQL that SQLAlchemy compiled from that same statement, kept
in a cache beside the catalog (`SqliteReads`, `ReadCache`), on the driver alone: a command whose
statements are all cached imports no SQLAlchemy (0.2 s of a ~0.45 s command). A statement missing from
the cache is compiled then, from its builder: there is one rule, the Core statement, and two ways to run it.
"""
