# launch-server image: the gRPC server with its embedded defaults (SQLite + local storage under
# /data). Point it at PostgreSQL / S3 with LAUNCH_DATABASE_URL / LAUNCH_STORAGE_URL instead.
#   docker build -t launch-server .
#   docker run --init --shm-size=2g -p 50051:50051 -v launch-data:/data launch-server
# (--init reaps Ray's worker processes; Ray wants a /dev/shm larger than Docker's 64 MB default.)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAUNCH_DATA_DIR=/data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY launch_client ./launch_client
COPY launch_server ./launch_server
RUN pip install '.[server]' \
    && useradd --create-home --uid 10001 launch \
    && mkdir -p /data && chown launch:launch /data

USER launch
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051
# On first start with an empty /data the server creates a key for owner "dev" in /data/dev_api_key;
# create more with: docker exec <container> launch-server keys create --owner alice
ENTRYPOINT ["launch-server", "serve", "--bind", "0.0.0.0:50051"]
