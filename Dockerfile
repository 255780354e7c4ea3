# callbill worker image. Build: docker build -t callbill .
# Run (production): docker run --env-file deploy/production.env -e CALLBILL_..._SECRET=… \
#   -v callbill-data:/data -v ./config:/config:ro -p 6066:6066 callbill
# The image has no rate card: mount yours (CALLBILL_RATE_CARD, /config/rate-card.yaml in
# deploy/production.env); the sample one is refused in production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY schemas ./schemas
COPY domain ./domain
COPY adapters ./adapters
COPY runtime ./runtime
# the runtime set only (no dev stack, no benchmarks); the CJK font file without rinohtype
RUN pip install -c constraints.txt ".[rocksdb]" \
    && pip install -c constraints.txt --no-deps rinoh-typeface-notosanscjk \
    && useradd --system --uid 10001 --home /data callbill \
    && mkdir -p /data && chown callbill /data

USER callbill
VOLUME /data
ENV CALLBILL_DATA_DIR=/data CALLBILL_STORE=rocksdb:// CALLBILL_WEB_HOST=0.0.0.0 CALLBILL_RATE_CARD=/config/rate-card.yaml
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/health/live', timeout=2).status == 200 else 1)"
CMD ["callbill", "worker"]
