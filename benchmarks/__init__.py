"""Benchmarks (``make bench``): each compares our stage with a faithful baseline in the same process."""
