# The platform's Python processes (gateways, projectors, topic provisioning) for Docker users.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY requirements.lock ./
RUN uv venv /opt/venv && uv pip sync --require-hashes --python /opt/venv/bin/python requirements.lock
COPY . .
# /keys is the volume where local mode creates the key pairs (users tokens, service tokens) on first start.
RUN useradd --system app && mkdir /keys && chown app /keys
USER app
