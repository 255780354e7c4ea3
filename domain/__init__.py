"""Pure business rules: no Kafka, no HTTP, no clock reads except where passed in."""
