"""The dev hub: edgeHub's MQTT protocol and the IoT Edge workload API, enough for unmodified
modules using ``azure-iot-device`` to run as plain processes on a laptop or in tests."""
