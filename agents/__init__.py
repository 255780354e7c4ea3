"""Faust agents: thin orchestration that reads a topic, calls the domain, writes topics."""
