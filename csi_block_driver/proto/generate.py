"""Regenerate the committed Python stubs from ``csi.proto`` with grpcio-tools.

The stubs are committed (so installing the driver needs no protoc) and a test regenerates them
into a temporary directory and compares, so the proto and the stubs can never drift apart.

    python -m csi_block_driver.proto.generate [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
# protoc runs from the repository root so the generated imports are package-qualified
# (`from csi_block_driver.proto import csi_pb2`), not the flat `import csi_pb2` protoc emits
# when the proto sits at the include root.
REPO_ROOT = PROTO_DIR.parent.parent
PROTO_REL = "csi_block_driver/proto/csi.proto"
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Generate the stubs under ``out_root/csi_block_driver/proto/``; return their paths."""
    from grpc_tools import protoc  # dev dependency: only needed to (re)generate

    well_known = str(resources.files("grpc_tools") / "_proto")
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{REPO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(REPO_ROOT / PROTO_REL),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    return [out_root / "csi_block_driver" / "proto" / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT,
        help="root to generate into (default: the repository, overwriting the stubs)",
    )
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(f"generated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
