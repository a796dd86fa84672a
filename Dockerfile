# lianmo party node (also the coordinator's and auditor's CLI): `lianmo` is the entry point.
#
#   docker build -t lianmo:0.9.0 .
#   docker run -v $PWD/party.toml:/etc/lianmo/party.toml:ro ... lianmo:0.9.0
#
# The default command serves a party node from /etc/lianmo/party.toml; its state lives in
# /var/lib/lianmo (mount a volume there). See docs/deploy.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# [http]: the HTTP/JSON front for decision engines (`lianmo http-front serve`, docs/serving.md)
RUN pip install --no-cache-dir --root-user-action=ignore --prefix=/install ".[http]"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="lianmo" \
      org.opencontainers.image.description="Privacy-preserving vertical federated learning for finance" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 lianmo \
 && useradd --system --uid 10001 --gid lianmo --home-dir /var/lib/lianmo --no-create-home lianmo \
 && mkdir -p /var/lib/lianmo /etc/lianmo \
 && chown lianmo:lianmo /var/lib/lianmo
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    GRPC_VERBOSITY=ERROR
USER 10001:10001
WORKDIR /var/lib/lianmo
VOLUME ["/var/lib/lianmo"]
# 7000: federation and control (mutual TLS); 7001: gRPC health only (plaintext, no data);
# 7443: online scoring ([serving] listen, mutual TLS); 9464: Prometheus metrics
# ([metrics] listen, plaintext HTTP, for the monitoring network only). docs/deploy.md.
EXPOSE 7000 7001 7443 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["lianmo", "party", "health", "--address", "127.0.0.1:7001"]
ENTRYPOINT ["lianmo"]
CMD ["party", "serve", "--config", "/etc/lianmo/party.toml"]
