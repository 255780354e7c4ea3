"""Kafka message headers callbill sets and reads: one name each, here."""

ATTEMPT = "callbill-attempt"  # set by the retry agent on what it sends back: the attempt it is
REISSUE = "callbill-reissue"  # set by `callbill replay --force-reissue`: render and send again (the run id)
REPLAY = "callbill-replay"  # set by `callbill replay` on every message it re-publishes (the run id)
REROUTED_FROM = "callbill-rerouted-from"  # on a record moved to its key's partition: topic/partition/offset it was read at
