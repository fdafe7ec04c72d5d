"""Regenerate the committed Python stubs from the project's COSI protos.

    .venv/bin/python -m cosi_driver.proto.generate          # rewrite the stubs in place
    .venv/bin/python -m cosi_driver.proto.generate --check  # exit 1 when they are stale

The stubs are committed (so installing the package never needs grpcio-tools) and
tests/cosi/test_proto_stubs.py regenerates them into a temp dir and compares, so a proto edit
without regenerating fails CI.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent.parent
PROTOS = ("cosi_v1alpha1.proto", "cosi_v1alpha2.proto")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
OUTPUTS = tuple(f"{Path(p).stem}{suffix}" for p in PROTOS for suffix in SUFFIXES)


def generate(out_root: Path) -> None:
    """Run protoc (from grpcio-tools) with the repository root as include path, so generated
    imports read `from cosi_driver.proto import ..._pb2`."""
    from grpc_tools import protoc  # dev dependency; imported lazily

    rel = [str((PROTO_DIR / p).relative_to(ROOT)) for p in PROTOS]
    args = [
        "protoc",
        f"-I{ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *rel,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def stale_outputs() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PROTO_DIR.relative_to(ROOT)
        return [
            name
            for name in OUTPUTS
            if not (PROTO_DIR / name).exists()
            or not filecmp.cmp(fresh / name, PROTO_DIR / name, shallow=False)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report stale stubs (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_outputs()
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    generate(ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
