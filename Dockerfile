# One image, two commands: `lodestone api` and `lodestone worker` (and `lodestone migrate`).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    fonts-dejavu-core curl \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 lodestone
WORKDIR /app
COPY pyproject.toml README.md ./
# The floors of a production install; devstack/ (the embedded servers, the demo, the
# stand-ins) is left out, as is the dev extra.
COPY cli cli
COPY api api
COPY services services
COPY workflows workflows
COPY activities activities
COPY schema schema
COPY lodestone lodestone
COPY worker.py ./
RUN pip install --no-cache-dir .
USER lodestone
ENV API_HOST=0.0.0.0 API_PORT=8000 DATA_DIR=/tmp/lodestone
EXPOSE 8000
CMD ["lodestone", "api"]
