"""The worker's rate card and ERP client, built once from settings."""
from __future__ import annotations

from functools import lru_cache

from adapters.erp import ErpClient
from runtime.settings import get_settings
from domain.pricing import RateCard, load_rate_card


@lru_cache(maxsize=1)
def rate_card() -> RateCard:
    return load_rate_card(get_settings().rate_card)


@lru_cache(maxsize=1)
def client() -> ErpClient | None:
    s = get_settings()
    if not s.erp_url:
        return None
    return ErpClient(s.erp_url, s.erp_token.get_secret_value() if s.erp_token else None,
                     timeout=s.erp_timeout, max_connections=s.erp_concurrency)
