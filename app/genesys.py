"""The worker's one Genesys API client and wrap-up code resolver, built from settings."""
from __future__ import annotations

from functools import lru_cache

from adapters.genesys import GenesysClient, WrapupCodes
from runtime.settings import get_settings


@lru_cache(maxsize=1)
def client() -> GenesysClient | None:
    s = get_settings()
    if not (s.genesys_client_id and s.genesys_client_secret):
        return None
    return GenesysClient(
        s.genesys_client_id, s.genesys_client_secret.get_secret_value(), region=s.genesys_region,
        api_url=s.genesys_api_url, login_url=s.genesys_login_url,
    )


@lru_cache(maxsize=1)
def wrapup_codes() -> WrapupCodes:
    s = get_settings()
    if s.wrapup_codes_file:
        return WrapupCodes.from_file(s.wrapup_codes_file, client(), ttl=s.wrapup_cache_ttl)
    return WrapupCodes(client(), ttl=s.wrapup_cache_ttl)
