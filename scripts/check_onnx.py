#!/usr/bin/env python3
"""Checks an ONNX model written by `alexnet export` and runs it (the export test, and anyone's
check of their own export): onnx.checker.check_model with full_check (shape inference included),
then onnxruntime on each tensor of INPUTS (a safetensors file), writing each one's "logits" to
OUTPUTS under the same name. Prints one JSON line: the opset, the graph's operators, its input
and output shapes (symbolic dimensions by name) and the model's metadata.

usage: check_onnx.py MODEL.onnx INPUTS.safetensors OUTPUTS.safetensors
"""
import json
import sys

import onnx
import onnxruntime
from safetensors.numpy import load_file, save_file


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main(model_path, inputs_path, outputs_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    outputs = {name: session.run(["logits"], {"input": x})[0] for name, x in load_file(inputs_path).items()}
    save_file(outputs, outputs_path)
    print(json.dumps({
        "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
        "ops": [n.op_type for n in model.graph.node],
        "input": dims(model.graph.input[0]),
        "output": dims(model.graph.output[0]),
        "initializers": len(model.graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
