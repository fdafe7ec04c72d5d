"""Prometheus metrics of the NVMe/TCP target (served by the vms-mock /metrics endpoint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("vms_mock_nvmet_commands_total", "NVMe commands completed by the target",
                   ["queue", "result"])
BYTES = Counter("vms_mock_nvmet_bytes_total", "Data bytes moved by NVMe Read/Write", ["direction"])
CONNECTIONS = Gauge("vms_mock_nvmet_connections", "Open NVMe/TCP connections (queues)")
CONTROLLERS = Gauge("vms_mock_nvmet_controllers", "Live NVMe controllers (admin queues)")
FATAL = Counter("vms_mock_nvmet_transport_errors_total", "Connections ended by a fatal transport error",
                ["reason"])

# Children resolved once: a label lookup per command costs more than the increment.
COMMAND_RESULT = {(queue, ok): COMMANDS.labels(queue, "ok" if ok else "error")
                  for queue in ("admin", "io") for ok in (True, False)}
BYTES_READ = BYTES.labels("read")
BYTES_WRITTEN = BYTES.labels("write")
LOOP_LAG = Histogram("vms_mock_nvmet_loop_lag_seconds",
                     "How late a 50 ms timer on the target's event loop fires (loop blocked or busy)",
                     buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
LOOP_LAG_MAX = Gauge("vms_mock_nvmet_loop_lag_max_seconds", "Largest event loop lag seen")
