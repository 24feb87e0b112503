FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY detectors detectors
COPY simulator simulator
COPY streams streams
COPY dashboards dashboards
RUN pip install --no-cache-dir . && useradd --create-home placewatch
USER placewatch
WORKDIR /home/placewatch
# Inside the compose network the exporter must listen beyond loopback; the host side of the
# port mapping stays on 127.0.0.1 (docker-compose.yml).
ENV PLACEWATCH_METRICS_HOST=0.0.0.0 PLACEWATCH_LOG_FORMAT=json
ENTRYPOINT ["placewatch"]
CMD ["run"]
