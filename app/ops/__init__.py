"""Operator commands of the `callbill` CLI."""
