"""Prometheus metrics of the NVMe/TCP target (served by the vms-mock /metrics endpoint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

COMMANDS = Counter("vms_mock_nvmet_commands_total", "NVMe commands completed by the target",
                   ["queue", "result"])
BYTES = Counter("vms_mock_nvmet_bytes_total", "Data bytes moved by NVMe Read/Write", ["direction"])
CONNECTIONS = Gauge("vms_mock_nvmet_connections", "Open NVMe/TCP connections (queues)")
CONTROLLERS = Gauge("vms_mock_nvmet_controllers", "Live NVMe controllers (admin queues)")
FATAL = Counter("vms_mock_nvmet_transport_errors_total", "Connections ended by a fatal transport error",
                ["reason"])
