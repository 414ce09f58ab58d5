"""Try to connect to the hub with the real SDK and print the outcome as one JSON line.

Uses the IoT Edge environment (``IOTEDGE_*``); with ``CHECK_KEY`` set it connects with a
connection string holding that key instead (to test a wrong key), trusting ``CHECK_CA``.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from azure.iot.device import IoTHubModuleClient

    key = os.environ.get("CHECK_KEY")
    if key:
        conn_str = (
            f"HostName={os.environ['IOTEDGE_IOTHUBHOSTNAME']};DeviceId={os.environ['IOTEDGE_DEVICEID']};"
            f"ModuleId={os.environ['IOTEDGE_MODULEID']};SharedAccessKey={key};"
            f"GatewayHostName={os.environ['IOTEDGE_GATEWAYHOSTNAME']}"
        )
        with open(os.environ["CHECK_CA"], encoding="ascii") as ca:
            client = IoTHubModuleClient.create_from_connection_string(
                conn_str, server_verification_cert=ca.read(), connection_retry=False
            )
    else:
        client = IoTHubModuleClient.create_from_edge_environment(connection_retry=False)
    try:
        client.connect()
    except Exception as exc:
        print(json.dumps({"result": type(exc).__name__, "cause": repr(exc.__cause__)}), flush=True)
        return 1
    finally:
        client.shutdown()
    print(json.dumps({"result": "connected"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
