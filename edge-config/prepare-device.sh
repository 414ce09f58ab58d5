#!/usr/bin/env bash
# Prepare an IoT Edge device for EdgeLoop: the host folders the deployment manifest binds
# into the containers, owned by the users the containers run as (the modules: 10001;
# edgeHub and edgeAgent: 1000). Docker would otherwise create them owned by root, and the
# modules could not write there. Run once per device, as root:  sudo edge-config/prepare-device.sh
set -euo pipefail
ROOT="${EDGELOOP_HOST_ROOT:-/var/lib/edgeloop}"
install -d -m 0755 "$ROOT"
for dir in samples models filter outbox; do
    install -d -m 0750 -o 10001 -g 10001 "$ROOT/$dir"
done
install -d -m 0700 -o 1000 -g 1000 "$ROOT/edgehub"
install -d -m 0700 /var/secrets/edgeloop
echo "EdgeLoop host folders ready under $ROOT"
