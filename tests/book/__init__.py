"""Helpers for tests/test_book.py: build the book once (build.py), check its pages in Chromium
(browser.py)."""
