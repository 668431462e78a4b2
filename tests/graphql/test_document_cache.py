"""Parsed and validated documents are cached by text in an LRU bounded by memory, not by
entry count: many distinct large documents cannot pin the process's memory."""

import gc
import tracemalloc

import pytest
from graphql import parse

from app.config import Settings
from app.graphql.limits import DocumentCache, QueryLimits
from app.graphql.schema import build_schema
from app.main import query_limits


def operations(tag: str, count: int) -> str:
    """A valid document of `count` small operations, distinct for each tag."""
    return " ".join(f"query Q{tag}_{i} {{ __typename }}" for i in range(count))


def test_the_cache_stays_under_its_bound_and_forgets_the_oldest_first():
    # given documents of the same length, and a cache room for ten of them
    texts = [operations(f"d{n:03}", 20) for n in range(200)]
    one = DocumentCache.estimate(texts[0])
    assert {DocumentCache.estimate(t) for t in texts} == {one}
    cache = DocumentCache(max_bytes=10 * one)

    # when all are cached in turn, the first one read again each time until the 100th
    for n, text in enumerate(texts):
        cache.put(text, parse(text))
        assert cache.size <= 10 * one
        if n < 100:
            assert cache.get(texts[0]) is not None

    # then the ten most recent fill it: the oldest went first, the one read again too once
    # it was no longer read
    assert len(cache) == 10
    assert cache.size == 10 * one
    assert [t for t in texts if t in cache] == texts[-10:]
    assert texts[0] not in cache


def test_a_document_larger_than_the_whole_cache_is_not_cached():
    cache = DocumentCache(max_bytes=10_000)
    text = operations("big", 50)
    cache.put(text, parse(text))
    assert len(cache) == 0
    assert cache.size == 0


def test_the_schema_caches_parsing_and_validation_within_the_setting(database_url):
    # given the schema for a cache of 2 MB
    limits = query_limits(Settings(database_url=database_url, query_cache_bytes=2_000_000))
    schema = build_schema(limits)
    assert schema.documents.max_bytes == 2_000_000

    # when many distinct documents are executed
    texts = [operations(f"s{n}", 20) for n in range(100)]
    for text in texts:
        result = schema.execute_sync(text, operation_name=text.split()[1])
        assert result.errors is None

    # then the cache holds the latest, validated, within its bound
    assert schema.documents.size <= 2_000_000
    assert texts[-1] in schema.documents
    assert texts[0] not in schema.documents
    assert schema.documents.get(texts[-1]).errors == []


@pytest.mark.slow  # thousands of documents parsed under tracemalloc
def test_memory_kept_by_the_cache_is_bounded():
    # given a schema whose cache may account for 8 MB
    schema = build_schema(QueryLimits(cache_bytes=8_000_000, tokens=50_000))

    # when 60 distinct ~8 KB documents (~1 MB each once parsed and validated) are run
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(60):
            text = operations(f"m{n}", 300)
            result = schema.execute_sync(text, operation_name=f"Qm{n}_0")
            assert result.errors is None
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    # then what stays allocated is within the cache's bound (plus a little slack),
    # not one parsed document per distinct text
    assert schema.documents.size <= 8_000_000
    assert kept < 10_000_000, kept
