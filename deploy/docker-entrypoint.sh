#!/bin/sh
# Secrets as files (compose and Kubernetes secrets): VAR_FILE=/path sets VAR to the
# file's content, for the settings that carry credentials. Then run the command.
set -eu
for var in REDIS_PASSWORD REDIS_URL CELERY_BROKER_URL DATABASE_URL CONVEYOR_ALERT_WEBHOOK_URL; do
    eval "file=\${${var}_FILE:-}"
    if [ -n "$file" ]; then
        value="$(cat "$file")"
        export "$var=$value"
        unset "${var}_FILE"
    fi
done
exec "$@"
