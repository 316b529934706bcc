"""Regenerate the committed protobuf/gRPC modules in proto/gradserve/v1 from the .proto files.

    python scripts/gen_proto.py            # rewrite the generated modules
    python scripts/gen_proto.py --out DIR  # write them under DIR instead (the staleness test)

The generated modules carry the generator's version (GRPC_GENERATED_VERSION, "Protobuf Python
Version"), so they are made with exactly the grpcio-tools that pyproject.toml's `test` extra
pins. To move to a newer one: change that pin and the `grpcio*`/`protobuf` floors in
`dependencies` to the new stamps, install, run this script, and commit the stubs with them.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def pinned_tools_version() -> str:
    """The grpcio-tools version the `test` extra pins (`grpcio-tools==X`)."""
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    pins = [req.split("==", 1)[1] for req in extra if req.startswith("grpcio-tools==")]
    if len(pins) != 1:
        raise SystemExit("pyproject.toml's test extra must pin grpcio-tools==X exactly once")
    return pins[0]


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    from importlib.metadata import version

    import grpc_tools
    from grpc_tools import protoc

    installed, pinned = version("grpcio-tools"), pinned_tools_version()
    if installed != pinned:
        raise SystemExit(f"grpcio-tools {installed} is installed but the stubs are made with "
                         f"{pinned} (pyproject.toml): pip install grpcio-tools=={pinned}")

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
