"""Choosing the documents to swap: windows of batches, selection strategies, score-based mapping."""
