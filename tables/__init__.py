"""Faust tables (changelog-backed state)."""
