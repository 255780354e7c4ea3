"""Adapters to outside systems (Genesys Cloud, …) behind small interfaces the domain can fake."""
