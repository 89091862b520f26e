"""Test fixtures physai packages share (registered as a pytest plugin)."""
