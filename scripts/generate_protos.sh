#!/usr/bin/env bash
# Regenerates the Swift code of the two protobuf schemas the project writes, both committed, so
# building never needs these tools; rerun this only after editing or updating a schema:
#   Sources/Protos/TensorBoard.pb.swift        from Protos/tensorboard.proto (the Event and
#                                                 Summary messages TensorBoard reads)
#   Sources/Protos/ONNX.pb.swift                from ONNX's published onnx.proto, taken from the
#                                                 onnx wheel on PyPI (version $ONNX_VERSION below)
#
# Tools (the versions the committed files were made with):
#   protoc 3.21.12           Debian's protobuf-compiler (apt-get install protobuf-compiler)
#   protoc-gen-swift 1.39.0  the plugin of the swift-protobuf version in Package.resolved; build it
#                            outside the repository:
#       git clone https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#       git -C /tmp/swift-protobuf checkout 1.39.0
#       (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
#   and pass it as PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift, or put
#   it on PATH.
#   python3 with pip, to download the onnx wheel (no install).
set -euo pipefail
cd "$(dirname "$0")/.."
ONNX_VERSION=1.23.2
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
[ -x "$plugin" ] || { echo "generate_protos: protoc-gen-swift not found (set PROTOC_GEN_SWIFT; see this script's header)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate_protos: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
echo "protoc: $(protoc --version); protoc-gen-swift: $("$plugin" --version)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mkdir "$out/proto" "$out/swift"
cp Protos/tensorboard.proto "$out/proto/"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$out" "onnx==$ONNX_VERSION"
python3 - "$out" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnx-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[1] + "/proto/onnx.proto", "wb") as f:
    f.write(z.read("onnx/onnx.proto"))
PY

# generate SCHEMA TARGET SOURCE-DESCRIPTION
generate() {
    protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$out/proto" \
        --swift_opt=Visibility=Package --swift_out="$out/swift" "$1"
    {
        echo "// GENERATED FILE, DO NOT EDIT: scripts/generate_protos.sh makes it from $3"
        echo "// ($(protoc --version), $("$plugin" --version), Visibility=Package)."
        echo
        cat "$out/swift/${1%.proto}.pb.swift"
    } > "$2"
    echo "wrote $2"
}
generate tensorboard.proto Sources/Protos/TensorBoard.pb.swift "Protos/tensorboard.proto"
generate onnx.proto Sources/Protos/ONNX.pb.swift "onnx.proto of the onnx $ONNX_VERSION wheel on PyPI"
