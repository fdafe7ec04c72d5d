"""The S3 endpoint of the vms-mock storage core.

Modules, outermost first: ``service`` (start_s3) → ``http`` (lean HTTP/1.1 on asyncio) →
``app`` (addressing, routing) → ``bucket_ops`` / ``object_ops`` / ``multipart_ops`` (the S3
operations, helpers in ``ops_base``) → ``sigv4`` (signatures), ``policy`` (authorization),
``objects`` + ``awschunked`` (streamed, verified bodies) → ``store`` (per-bucket SQLite index
and object files). ``directory`` is the Protocol to the VMS state; ``core_directory`` implements
it over ``vms_mock.core_api``; ``errors`` maps S3 error codes to statuses in one table.
"""
