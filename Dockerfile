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
# python-ldap (the sync's reader) builds against OpenLDAP's client library, gssapi (single sign-on) against MIT
# krb5; only their runtimes stay in the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev libkrb5-dev libldap-2.5-0 \
       libsasl2-2 libgssapi-krb5-2 \
    && pip install --no-cache-dir . && python manage.py collectstatic --noinput \
    && apt-get purge -y gcc libldap2-dev libsasl2-dev libkrb5-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 8000
CMD ["gunicorn", "icewarp_admin.wsgi:application", "--bind", "0.0.0.0:8000"]
