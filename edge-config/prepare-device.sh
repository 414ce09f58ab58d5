#!/usr/bin/env bash
# Prepare an IoT Edge device for EdgeLoop: every host folder the deployment manifest binds into
# the containers, owned by the user the containers run as (the modules: 10001, as their
# Dockerfiles' USER; edgeHub: 1000). Docker would otherwise create them owned by root, and the
# modules could not write there. Run once per device, as root:  sudo edge-config/prepare-device.sh
#
#   samples   capture writes frames; inference reads them; the uploader claims the selected ones
#   capture   where capture's file sources got to (EDGELOOP_STATE_DIR of capture)
#   models    inference's model cache and initial model
#   filter    the filter's budgets and decisions (EDGELOOP_STATE_DIR of filter)
#   outbox    the uploader's durable outbox
#   secrets   secret files (storage SAS URL, camera URLs), bound read-only into capture and the
#             uploader; root owns it, the modules' group reads it (files: 0640 root:10001)
#   edgehub   edgeHub's store-and-forward queue
set -euo pipefail
ROOT="${EDGELOOP_HOST_ROOT:-/var/lib/edgeloop}"
MODULE_UID="${EDGELOOP_MODULE_UID:-10001}"
install -d -m 0755 "$ROOT"
for dir in samples capture models filter outbox; do
    install -d -m 0750 -o "$MODULE_UID" -g "$MODULE_UID" "$ROOT/$dir"
done
install -d -m 0750 -o 0 -g "$MODULE_UID" "$ROOT/secrets"
install -d -m 0700 -o 1000 -g 1000 "$ROOT/edgehub"
if [ -z "${EDGELOOP_HOST_ROOT:-}" ]; then
    install -d -m 0700 /var/secrets/edgeloop    # the IoT Edge runtime's own keys (config.toml)
fi
echo "EdgeLoop host folders ready under $ROOT"
echo "Secret files go in $ROOT/secrets (install -m 0640 -o root -g $MODULE_UID FILE $ROOT/secrets/)"
