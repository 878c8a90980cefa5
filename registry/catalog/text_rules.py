"""The catalog's text rules that reads apply in Python beside SQL: a tag_set's elements, the search
words. No SQLAlchemy here (the CLI's local reads); registry.catalog.tables re-exports them beside the
tables they describe."""

from __future__ import annotations

# A term that is one run of SEARCH_WORD_PATTERN of at least SEARCH_WORD_MIN characters is a word of the
# word index (tables.search_words).
SEARCH_WORD_PATTERN = "[0-9a-z]+"
SEARCH_WORD_MIN = 3


def tag_set_element(key: str, value: str) -> str:
    """The element of `tag_set` that a tag key=value is (TAG_SET_ELEMENT_SQL, the database's rule)."""
    return f"{len(key)}:{key}={value}"


def tags_of_set(elements: list[str] | None) -> dict[str, str]:
    """The tags a `tag_set` holds, by key (tag_set_element read back): what a listing shows."""
    tags = {}
    for element in elements or ():
        length, _, rest = element.partition(":")
        n = int(length)
        tags[rest[:n]] = rest[n + 1 :]
    return dict(sorted(tags.items()))
