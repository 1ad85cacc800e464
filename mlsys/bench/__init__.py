"""Shared helpers for the ``mlsys bench ...`` commands: timing and side-by-side tables."""
