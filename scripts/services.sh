#!/usr/bin/env bash
# Make sure the services the test suite uses are up. On this machine kind they are
# started before a session; this restarts one that has stopped, and never installs
# anything by hand. The S3 endpoint (moto) is started by the tests themselves.
set -euo pipefail

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# Mosquitto (MQTT, 127.0.0.1:1883): the remote-monitoring tests publish to it for real.
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && command -v mosquitto >/dev/null 2>&1; then
  echo "Mosquitto is not answering on 127.0.0.1:1883; starting it" >&2
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 1; done
fi
