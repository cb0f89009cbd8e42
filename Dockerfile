# The dms-ingestion image: localdms, the flow, Prefect (server and worker) and the sample data.
# Dependencies come from uv.lock; the final stage has no compilers, no uv and runs as a non-root user.
FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY localdms localdms
COPY dms_spec dms_spec
COPY flows flows
COPY lake lake
COPY blocks blocks
COPY work_pools work_pools
COPY automations automations
COPY demo demo
COPY sandbox sandbox
COPY config config
COPY prefect.yaml ./
RUN uv sync --frozen --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 dms && mkdir /data && chown dms /data
WORKDIR /app
COPY --from=build --chown=dms /app /app
ENV PATH=/app/.venv/bin:$PATH \
    DMS_INGESTION_HOME=/app \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PYTHONUNBUFFERED=1
USER dms
EXPOSE 4599 4200 8080
# No HEALTHCHECK here: the image runs localdms, the Prefect server and a worker, each with its own
# probe (docker-compose.yml); an image-wide one would probe localdms's port in all of them.
CMD ["localdms", "serve", "--host", "0.0.0.0", "--port", "4599", "--state-dir", "/data"]
