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
ENV STATIC_ROOT=/app/staticfiles WHITENOISE_USE_FINDERS=0 VAR_DIR=/var/lib/console
# python-ldap (the sync's reader) builds against OpenLDAP's client library, gssapi (single sign-on) against MIT
# krb5; only their runtimes stay in the image. collectstatic loads the settings, which would make secrets in
# VAR_DIR: a throw-away one, so that no key is left in the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev libkrb5-dev libldap-2.5-0 \
       libsasl2-2 libgssapi-krb5-2 \
    && pip install --no-cache-dir . \
    && VAR_DIR=/tmp/build python manage.py collectstatic --noinput && rm -rf /tmp/build \
    && apt-get purge -y gcc libldap2-dev libsasl2-dev libkrb5-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
# The processes run as their own user, never root; they write only under /var/lib/console (the compose file's
# volume: mail root, config folder, beat's schedule), which a new volume takes over from the image, owner
# included. The numeric id lets an orchestrator check runAsNonRoot.
RUN groupadd --system --gid 10001 console \
    && useradd --system --uid 10001 --gid console --home-dir /var/lib/console --shell /usr/sbin/nologin console \
    && install -d -o console -g console -m 0750 /var/lib/console
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "icewarp_admin.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--config", "python:icewarp_admin.gunicorn_config"]
