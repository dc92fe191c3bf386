#!/bin/sh
# Entry point of the redis service in docker-compose.prod.yml: renders the ACL users
# (deploy/redis/users.acl.template, mounted read-only) with the passwords from the
# environment into a file only the redis user can read, then starts Redis on it with the
# image's own entrypoint (which drops to the redis user). Fails, and Redis does not
# start, when a password is missing or not URL-safe (the services put it in REDIS_URL).
set -eu
# (The two paths can be moved for tests/unit/test_compose_prod.py, which runs this.)
template="${ACL_TEMPLATE:-/deploy/redis/users.acl.template}"
rendered="${ACL_FILE:-/run/redis-acl/users.acl}"

mkdir -p "$(dirname "$rendered")"
umask 077
sed -e '/^#/d' -e '/^$/d' "$template" > "$rendered.tmp"
for name in REDIS_ADMIN_PASSWORD REDIS_TRANSACTION_PASSWORD REDIS_DETECTOR_PASSWORD REDIS_ALERT_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    "" | *[!A-Za-z0-9._~-]*) echo "start.sh: $name is empty or not URL-safe" >&2; exit 1 ;;
  esac
  sed -i "s|\${$name}|$value|g" "$rendered.tmp"
done
if grep -q '\${' "$rendered.tmp"; then
  echo "start.sh: a placeholder in $template has no variable" >&2
  exit 1
fi
mv "$rendered.tmp" "$rendered"
if [ "$(id -u)" = 0 ]; then
  chown -R redis:redis "$(dirname "$rendered")"
fi
exec docker-entrypoint.sh redis-server "$@" --aclfile "$rendered"
