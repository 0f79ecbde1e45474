# Image of the API and the worker (one image, two commands; see docker-compose.yml). The sandbox image that runs
# student code is a different one: sandbox/image/Dockerfile, built with `grader sandbox ensure-image`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 grader
WORKDIR /app

# Dependencies first, so editing the code does not reinstall them. No torch: it is a test-only extra.
COPY pyproject.toml ./
RUN mkdir -p grader reference sandbox api && touch grader/__init__.py reference/__init__.py sandbox/__init__.py \
        api/__init__.py && pip install . && pip uninstall -y cnn-autograder
COPY alembic.ini ./
COPY alembic ./alembic
COPY grader ./grader
COPY reference ./reference
COPY sandbox ./sandbox
COPY api ./api
COPY scripts ./scripts
COPY tests/fixtures/submissions ./tests/fixtures/submissions
RUN pip install --no-deps . && python -c "import api.main, grader.tasks"

USER grader
EXPOSE 8000
# The API migrates the schema at start; the worker only waits for it (the compose file orders them).
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn --factory api.main:create_app --host 0.0.0.0 --port 8000 --no-proxy-headers"]
