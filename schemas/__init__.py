"""Pydantic models for everything that crosses a boundary: HTTP bodies and topic values."""
