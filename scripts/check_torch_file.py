"""Checks a PyTorch file without PyTorch (the convert test, where CI cannot install torch).

Reads the zip archive with zipfile and the pickle with pickletools and a pickle.Unpickler whose
find_class allows exactly the globals torch.load(weights_only=True) accepts for a state dict,
rebuilding tensors as numpy arrays; prints a JSON object {name: [shape, sum, sum of squares]}
and the layout facts torch.load relies on. Usage: check_torch_file.py FILE.pt
"""
import collections
import io
import json
import pickle
import pickletools
import sys
import zipfile

import numpy as np

path = sys.argv[1]
archive = zipfile.ZipFile(path)
names = archive.namelist()
prefix = names[0].split("/")[0]
assert all(n.startswith(prefix + "/") for n in names), names
for required in ["data.pkl", "byteorder", "version", ".format_version"]:
    assert f"{prefix}/{required}" in names, f"missing {required}"
assert archive.read(f"{prefix}/byteorder") == b"little"
pkl = archive.read(f"{prefix}/data.pkl")
globals_used = set()
for op, arg, _ in pickletools.genops(pkl):
    if op.name == "GLOBAL":
        globals_used.add(arg.replace(" ", "."))
allowed = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"}
assert globals_used <= allowed, globals_used
# Storages start on 64-byte boundaries (torch.load's mmap=True needs it): after the local
# header's 30 bytes, its name and its extra field.
offsets_aligned = True
raw = open(path, "rb").read()
for n in names:
    if "/data/" in n:
        info = archive.getinfo(n)
        name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
        extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
        offsets_aligned &= (info.header_offset + 30 + name_len + extra_len) % 64 == 0


class Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def rebuild(storage, offset, size, stride, requires_grad, hooks):
    data = np.frombuffer(archive.read(f"{prefix}/data/{storage}"), dtype=np.float32)
    return np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=[s * 4 for s in stride]).copy()


class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full == "collections.OrderedDict":
            return collections.OrderedDict
        if full == "torch._utils._rebuild_tensor_v2":
            return rebuild
        if full == "torch.FloatStorage":
            return "FloatStorage"
        raise pickle.UnpicklingError(full)

    def persistent_load(self, pid):
        kind, storage_type, key, location, count = pid
        assert kind == "storage" and storage_type == "FloatStorage" and location == "cpu", pid
        return key


state = Restricted(io.BytesIO(pkl)).load()
assert isinstance(state, collections.OrderedDict), type(state)
out = {k: [list(v.shape), float(v.astype(np.float64).sum()), float((v.astype(np.float64) ** 2).sum())] for k, v in state.items()}
print(json.dumps({"tensors": out, "globals": sorted(globals_used), "aligned": bool(offsets_aligned)}))
