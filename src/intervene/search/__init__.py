"""Matching documents to evaluation instances: term search, term/pair matrices, BM25."""

from intervene.search.bm25 import bm25_scores
from intervene.search.find import find_terms

__all__ = ["bm25_scores", "find_terms"]
