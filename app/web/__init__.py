"""HTTP views of the worker: the bridge, health, operator pages, document links."""
