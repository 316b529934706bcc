"""Regenerate the committed protobuf/gRPC modules in proto/gradserve/v1 from the .proto files.

    python scripts/gen_proto.py            # rewrite the generated modules
    python scripts/gen_proto.py --out DIR  # write them under DIR instead (the staleness test)
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in out.rglob("*_pb2*.py*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=PROTO_ROOT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for path in generate(out):
        print(path.relative_to(out), file=sys.stderr)


if __name__ == "__main__":
    main()
