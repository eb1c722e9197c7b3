FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY icewarp_admin icewarp_admin
COPY directory_sync directory_sync
COPY devservers devservers
COPY templates templates
COPY static static
COPY manage.py ./
ENV STATIC_ROOT=/app/staticfiles WHITENOISE_USE_FINDERS=0
RUN pip install --no-cache-dir . && python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "icewarp_admin.wsgi:application", "--bind", "0.0.0.0:8000"]
