"""Runtime plumbing below the agents: settings, topics, Kafka security, logs, metrics, Faust fixes."""
