"""PyTorch reference for ten-crop evaluation and single-image classification (docs/DESIGN.md:
Network, Evaluation, Files).

What it makes, in Tests/Fixtures/eval/ (or OUT_DIR):
  paper.safetensors, seed.safetensors  weights of a width-reduced network of each variant
      (widths 8/16/24/24/16, hidden 32, 7 classes, input 224), the project's parameter names
      (conv1.weight ... fc8.bias), PyTorch shapes, F32; metadata variant/widths/hidden/classes/input_size.
  expected.json  per variant: ten-crop loss, top-1 and top-5 error over the 48-image dataset below,
      per image the label, the averaged output (7 float64 values), the predicted top-5 indices and the
      top-k margins; under "classify", single-crop and ten-crop probabilities for chelsea and coffee.

The dataset (DATASET_RULE below; the Swift test rebuilds it from the same PNGs). It is a pure pixel
permutation, no resampling. Sources: the six Tests/Fixtures/photos/*.rgb256.png (256x256 RGB, Pillow's
results, written by scripts/make_image_fixtures.py --photos), sorted by file name: astronaut, chelsea,
coffee, gray, rocket, small. Each source image a (numpy array H x W x 3, row y from the top, column x
from the left, N = 256) gives 8 images, transform index t = 0..7:
  t0 identity               out[y, x] = a[y, x]                  a
  t1 rotate 90 deg CCW      out[y, x] = a[x, N-1-y]              np.rot90(a, 1)
  t2 rotate 180 deg         out[y, x] = a[N-1-y, N-1-x]          np.rot90(a, 2)
  t3 rotate 270 deg CCW     out[y, x] = a[N-1-x, y]              np.rot90(a, 3)
  t4 mirror left-right      out[y, x] = a[y, N-1-x]              a[:, ::-1]
  t5 mirror top-bottom      out[y, x] = a[N-1-y, x]              a[::-1]
  t6 transpose              out[y, x] = a[x, y]                  a.transpose(1, 0, 2)
  t7 anti-transpose         out[y, x] = a[N-1-x, N-1-y]          np.rot90(a, 2).transpose(1, 0, 2)
Image j = 8 * (source index) + t, j = 0..47, has class index (j * 5 + j // 8) % 7, i.e. folder
"c<class>" (classes c0..c6, which are also the sorted folder names), and file name "<stem>_t<t>.png"
where stem is the source name without ".rgb256.png" (e.g. j = 9 is chelsea t1, class (45 + 1) % 7 = 4:
c4/chelsea_t1.png; the "images" list in expected.json gives every name and label).
Note: ten-crop is invariant under a left-right mirror of the image, so t0/t4, t1/t7, t2/t5 and t3/t6 of
one source have the same averaged output (different labels): 24 distinct predictions among 48 images.
With --write-dataset DIR the 48 PNGs are also written as DIR/c<k>/<stem>_t<t>.png (an ImageFolder-style
validation folder, handy for running `alexnet evaluate` by hand).

Evaluation (docs/DESIGN.md, Evaluation): pixel values as float64 on the 0-255 scale minus the channel
mean (123.675, 116.28, 103.53), no std division; torchvision ten_crop(img, 224) (TL, TR, BL, BR, centre,
then the same five of the left-right mirrored image); eval mode (no dropout); float64 throughout
(model.double() from the float32 weights). paper: mean of the ten softmaxes, loss = mean over images of
-log(mean prob of the label). seed: mean of the ten raw outputs (after its final ReLU), loss = mean of
cross_entropy(mean output, label). Top-k error from the averaged output with torch.topk.

Weights: PyTorch's default initialisation under torch.manual_seed(SEED[variant]); conv1..fc7 weights
multiplied by GAIN; fc8 calibrated on the fc7 features of the 480 crops (see build()) so outputs are
neither near-uniform nor saturated, with a positive bias shift for seed so its final ReLU clips only some
outputs (about 12 % of crop outputs). All stored as float32. The script fails unless the predictions are
non-degenerate (0 < top-1, top-5 error < 1) and no top-k decision or top-5 order is near a tie
(margins printed and stored).

Run (one to two minutes on a CPU):
    /work/torchenv/bin/python scripts/make_eval_fixture.py [--out Tests/Fixtures/eval] [--write-dataset DIR]
Environment: a venv outside the repo, `python3 -m venv /work/torchenv &&
/work/torchenv/bin/pip install torch torchvision numpy safetensors pillow`. Written with torch 2.15.0,
torchvision 0.29.2, numpy 2.4.6, safetensors 0.8.0, Pillow 13.0.0 (the version used is stored in
expected.json).
"""
import argparse
import glob
import json
import os
import struct

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchvision.transforms.functional import ten_crop

F = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures", "photos"))
OUT = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures", "eval"))

WIDTHS = [8, 16, 24, 24, 16]
HIDDEN = 32
CLASSES = 7
INPUT = 256
CROP = 224
MEAN = (123.675, 116.28, 103.53)
NAMES = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]

# Chosen so that the checks in check() pass with comfortable margins (see the report printed).
SEED = {"paper": 1, "seed": 2}
GAIN = 2.0
FC8_STD = 1.5
FC8_SHIFT = {"paper": 0.0, "seed": 1.0}

TRANSFORMS = [
    ("identity", "out[y,x] = a[y,x]", lambda a: a),
    ("rot90", "out[y,x] = a[x,N-1-y]  (np.rot90(a,1), 90 deg counter-clockwise)", lambda a: np.rot90(a, 1)),
    ("rot180", "out[y,x] = a[N-1-y,N-1-x]  (np.rot90(a,2))", lambda a: np.rot90(a, 2)),
    ("rot270", "out[y,x] = a[N-1-x,y]  (np.rot90(a,3), 270 deg counter-clockwise)", lambda a: np.rot90(a, 3)),
    ("mirror_lr", "out[y,x] = a[y,N-1-x]  (a[:, ::-1])", lambda a: a[:, ::-1]),
    ("mirror_tb", "out[y,x] = a[N-1-y,x]  (a[::-1])", lambda a: a[::-1]),
    ("transpose", "out[y,x] = a[x,y]  (a.transpose(1,0,2))", lambda a: a.transpose(1, 0, 2)),
    ("antitranspose", "out[y,x] = a[N-1-x,N-1-y]  (np.rot90(a,2).transpose(1,0,2))",
     lambda a: np.rot90(a, 2).transpose(1, 0, 2)),
]

DATASET_RULE = (
    "Sources: the six Tests/Fixtures/photos/*.rgb256.png (256x256 RGB, Pillow's results), sorted by file name. "
    "For source s (0..5) and transform t (0..7), image j = 8*s + t. With a the source as an H x W x 3 array "
    "(y = row from the top, x = column from the left, N = 256): "
    + "; ".join(f"t{i} {n}: {d}" for i, (n, d, _) in enumerate(TRANSFORMS))
    + ". Pure pixel permutations, no resampling. Label of image j: (j*5 + j//8) % 7, stored in folder "
    "'c<label>' (classes c0..c6 = sorted folder names, so folder ck has class index k); file name "
    "'<stem>_t<t>.png' with stem = source name without '.rgb256.png'."
)

# Sanity: the formulas in the table match the numpy expressions.
_a = np.arange(5 * 5 * 1).reshape(5, 5, 1)
_N = 5
_formula = [lambda y, x: (y, x), lambda y, x: (x, _N - 1 - y), lambda y, x: (_N - 1 - y, _N - 1 - x),
            lambda y, x: (_N - 1 - x, y), lambda y, x: (y, _N - 1 - x), lambda y, x: (_N - 1 - y, x),
            lambda y, x: (x, y), lambda y, x: (_N - 1 - x, _N - 1 - y)]
for (_, _, fn), fm in zip(TRANSFORMS, _formula):
    _o = fn(_a)
    assert all(_o[y, x, 0] == _a[fm(y, x)][0] for y in range(_N) for x in range(_N))


def save_safetensors(tensors, path, metadata):
    """safetensors.torch.save_file's format, but with the header's keys in a fixed order (save_file orders
    the metadata by a hash map), so that rerunning the script gives byte-identical files."""
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in sorted(tensors):
        b = tensors[k].to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(path)
    assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)


def dataset():
    srcs = sorted(glob.glob(os.path.join(IMAGES, "*.rgb256.png")))
    assert len(srcs) == 6, srcs
    items = []
    for s, path in enumerate(srcs):
        a = np.asarray(Image.open(path).convert("RGB"))
        assert a.shape == (INPUT, INPUT, 3) and a.dtype == np.uint8
        stem = os.path.basename(path)[: -len(".rgb256.png")]
        for t, (_, _, fn) in enumerate(TRANSFORMS):
            j = 8 * s + t
            label = (j * 5 + j // 8) % 7
            items.append({"j": j, "source": os.path.basename(path), "stem": stem, "t": t, "label": label,
                          "folder": f"c{label}", "file": f"c{label}/{stem}_t{t}.png",
                          "pixels": np.ascontiguousarray(fn(a))})
    return items


def to_input(pixels):
    """uint8 H x W x 3 -> float64 3 x H x W, 0-255 scale minus the channel mean."""
    x = torch.from_numpy(pixels.astype(np.float64)).permute(2, 0, 1)
    return x - torch.tensor(MEAN, dtype=F).view(3, 1, 1)


class Net(nn.Module):
    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        w1, w2, w3, w4, w5 = WIDTHS
        alpha = 5e-4 if variant == "paper" else 1e-3
        self.conv1 = nn.Conv2d(3, w1, 11, 4, 5)
        self.conv2 = nn.Conv2d(w1, w2, 5, 1, 2)
        self.conv3 = nn.Conv2d(w2, w3, 3, 1, 1)
        self.conv4 = nn.Conv2d(w3, w4, 3, 1, 1)
        self.conv5 = nn.Conv2d(w4, w5, 3, 1, 1)
        self.lrn = nn.LocalResponseNorm(5, alpha=alpha, beta=0.75, k=2.0)
        self.pool = nn.MaxPool2d(3, 2)
        flat = w5 * 6 * 6  # 224 -> 56 -> 27 -> 27 -> 13 -> 13 -> 6
        self.fc6 = nn.Linear(flat, HIDDEN)
        self.fc7 = nn.Linear(HIDDEN, HIDDEN)
        self.fc8 = nn.Linear(HIDDEN, CLASSES)
        self.drop = nn.Dropout(0.5)

    def pool5(self, x):
        r = torch.relu
        h = self.pool(self.lrn(r(self.conv1(x))))
        h = self.pool(self.lrn(r(self.conv2(h))))
        h = r(self.conv3(h))
        h = r(self.conv4(h))
        h = self.pool(r(self.conv5(h)))
        return torch.flatten(h, 1)

    def features6(self, x):
        h = self.pool5(x)
        if self.variant == "paper":
            return self.drop(torch.relu(self.fc6(h)))
        return torch.relu(self.fc6(self.drop(h)))

    def features7(self, x):
        h = self.features6(x)
        if self.variant == "paper":
            return self.drop(torch.relu(self.fc7(h)))
        return torch.relu(self.fc7(self.drop(h)))

    def head(self, h7):
        return self.fc8(h7) if self.variant == "paper" else torch.relu(self.fc8(h7))

    def forward(self, x):
        return self.head(self.features7(x))


def build(variant, crops):
    """Trunk to fc7: PyTorch's default initialisation under torch.manual_seed(SEED[variant]), weights times
    GAIN. fc8: default initialisation, then calibrated on the fc7 features of the 480 evaluation crops so
    the outputs are neither near-uniform nor saturated: weight scaled so the centred pre-activations have
    standard deviation FC8_STD, bias = minus the per-class mean plus FC8_SHIFT[variant] * FC8_STD (for
    seed, a positive shift so its final ReLU clips only some outputs). Parameters are rounded to float32
    and the network then computes in float64."""
    torch.manual_seed(SEED[variant])
    net = Net(variant)
    with torch.no_grad():
        for n in NAMES[:-1]:
            getattr(net, n).weight.mul_(GAIN)
        for n in NAMES:
            m = getattr(net, n)
            m.weight.copy_(m.weight.to(torch.float32)); m.bias.copy_(m.bias.to(torch.float32))
        net = net.double().eval()
        h7 = torch.cat([net.features7(c) for c in crops])  # 480 x hidden
        z = h7 @ net.fc8.weight.T
        w = net.fc8.weight * (FC8_STD / float((z - z.mean(0)).std()))
        w = w.to(torch.float32).to(F)
        z = h7 @ w.T
        b = (-z.mean(0) + FC8_SHIFT[variant] * FC8_STD).to(torch.float32).to(F)
        net.fc8.weight.copy_(w); net.fc8.bias.copy_(b)
    params = {}
    for n in NAMES:
        m = getattr(net, n)
        params[f"{n}.weight"] = m.weight.detach().to(torch.float32).contiguous().clone()
        params[f"{n}.bias"] = m.bias.detach().to(torch.float32).contiguous().clone()
    for k, v in params.items():
        assert torch.equal(v.to(F), dict(net.named_parameters())[k]), k
    stats = {"fc7_zero_fraction": float((h7 == 0).double().mean()),
             "fc6_zero_fraction": float(torch.cat([(net.features6(c) == 0) for c in crops]).double().mean())}
    return net, params, h7, stats


def crops_of(x):
    return torch.stack(ten_crop(x, CROP))  # 10 x 3 x 224 x 224


def margins(avg, k):
    s = torch.sort(avg, descending=True).values
    return float(s[k - 1] - s[k])


def evaluate(net, variant, items, h7):
    rows, outs, labels, clipped, total = [], [], [], 0, 0
    with torch.no_grad():
        for n, it in enumerate(items):
            y = net.head(h7[10 * n:10 * n + 10])  # the ten crops' outputs, 10 x classes (= net(crops))
            if variant == "paper":
                avg = torch.softmax(y, 1).mean(0)
            else:
                avg = y.mean(0)
                clipped += int((y == 0).sum()); total += y.numel()
            outs.append(avg); labels.append(it["label"])
    avg = torch.stack(outs)
    lab = torch.tensor(labels)
    if variant == "paper":
        loss = float(-torch.log(avg[torch.arange(len(lab)), lab]).mean())
    else:
        loss = float(nn.functional.cross_entropy(avg, lab, reduction="mean"))
    res = {"loss": loss, "images": len(items)}
    for k in (1, 5):
        top = torch.topk(avg, k, dim=1).indices
        wrong = ~(top == lab[:, None]).any(1)
        res[f"top{k}_error"] = float(wrong.double().mean())
        res[f"top{k}_wrong"] = int(wrong.sum())
    for it, a, l in zip(items, avg, labels):
        top5 = torch.topk(a, 5).indices.tolist()
        rows.append({"j": it["j"], "file": it["file"], "label": l, "averaged_output": a.tolist(),
                     "top5": top5, "margin_top1": margins(a, 1), "margin_top5": margins(a, 5)})
    res["min_margin_top1"] = min(r["margin_top1"] for r in rows)
    res["min_margin_top5"] = min(r["margin_top5"] for r in rows)
    res["per_image"] = rows
    if variant == "seed":
        res["fraction_of_crop_outputs_clipped_by_final_relu"] = clipped / total
    return res, avg


def classify(net, variant, items):
    out = {}
    with torch.no_grad():
        for stem in ("chelsea", "coffee"):
            it = next(i for i in items if i["stem"] == stem and i["t"] == 0)
            x = to_input(it["pixels"])
            o = (INPUT - CROP) // 2
            y1 = net(x[None, :, o:o + CROP, o:o + CROP])[0]
            p1 = torch.softmax(y1, 0)  # paper: softmax of logits; seed: softmax of ReLU'd outputs
            y10 = net(crops_of(x))
            p10 = torch.softmax(y10, 1).mean(0) if variant == "paper" else torch.softmax(y10.mean(0), 0)

            def top(p):
                v, i = torch.topk(p, 5)
                return [[int(a), float(b)] for a, b in zip(i, v)]

            out[f"{stem}.rgb256.png"] = {
                "center_crop": {"offset": o, "output": y1.tolist(), "probabilities": p1.tolist(), "top5": top(p1),
                                "min_margin_top5": min(margins(p1, k) for k in range(1, 6))},
                "ten_crop": {"probabilities": p10.tolist(), "top5": top(p10),
                             "min_margin_top5": min(margins(p10, k) for k in range(1, 6))},
            }
    return out


# Ten-crop is invariant under a left-right mirror of the image (the ten windows are the same set), so
# images t and MIRROR_PAIR[t] of one source have the same averaged output: 24 distinct among 48.
MIRROR_PAIR = {0: 4, 4: 0, 1: 7, 7: 1, 2: 5, 5: 2, 3: 6, 6: 3}


def check(variant, res, avg):
    bad = []
    for j in range(len(avg)):
        pj = 8 * (j // 8) + MIRROR_PAIR[j % 8]
        if not torch.allclose(avg[j], avg[pj], rtol=1e-12, atol=1e-15):
            bad.append(f"images {j} and {pj} should have the same ten-crop average")
    if not 0 < res["top1_error"] < 1:
        bad.append(f"top1 error {res['top1_error']}")
    if not 0 < res["top5_error"] < 1:
        bad.append(f"top5 error {res['top5_error']}")
    if len({tuple(round(v, 9) for v in r) for r in avg.tolist()}) != len(avg) // 2:
        bad.append("averaged outputs coincide beyond the mirror pairs")
    if variant == "paper" and float(avg.max(1).values.min()) < 1.5 / CLASSES:
        bad.append("some averaged softmax near uniform")
    rel = (res["min_margin_top1"], res["min_margin_top5"])
    scale = float(avg.abs().max())
    if min(rel) < 1e-3 * scale:
        bad.append(f"top-k margins too small {rel}")
    gaps = -torch.diff(torch.sort(avg, 1, descending=True).values[:, :6], dim=1)
    if float(gaps.min()) < 1e-4 * scale:
        bad.append(f"two of an image's top-6 averaged values within {float(gaps.min()):.2e}: top-5 order unclear")
    if variant == "seed":
        if res["fraction_of_crop_outputs_clipped_by_final_relu"] > 0.5:
            bad.append("final ReLU clips most outputs")
        if ((avg == 0).sum(1) > 2).any():
            bad.append("three averaged outputs of an image are exactly 0 (a tie within the top 5)")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--write-dataset", metavar="DIR")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    items = dataset()
    if a.write_dataset:
        for it in items:
            p = os.path.join(a.write_dataset, it["file"])
            os.makedirs(os.path.dirname(p), exist_ok=True)
            Image.fromarray(it["pixels"]).save(p)
    os.makedirs(a.out, exist_ok=True)
    crops = [crops_of(to_input(it["pixels"])) for it in items]
    expected = {
        "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
        "generator": "scripts/make_eval_fixture.py",
        "dataset_rule": DATASET_RULE,
        "class_folders": [f"c{k}" for k in range(CLASSES)],
        "images": [{"j": it["j"], "source": it["source"], "t": it["t"], "transform": TRANSFORMS[it["t"]][0],
                    "file": it["file"], "label": it["label"]} for it in items],
        "preprocessing": {"mean_rgb": list(MEAN), "scale": "0-255, no std division", "crop": CROP,
                          "ten_crop_order": "TL, TR, BL, BR, centre, then the same of the left-right mirrored image",
                          "dtype": "float64 computation from the float32 weights"},
        "network": {"widths": WIDTHS, "hidden": HIDDEN, "classes": CLASSES, "input_size": CROP,
                    "conv1": {"kernel": 11, "stride": 4, "padding": 5},
                    "lrn": {"size": 5, "beta": 0.75, "k": 2.0, "torch_alpha": {"paper": 5e-4, "seed": 1e-3}}},
        "weights_init": {"torch_manual_seed": SEED, "gain_conv1_to_fc7": GAIN, "fc8_std": FC8_STD, "fc8_shift": FC8_SHIFT},
        "ten_crop_mirror_pairs": "images t and t' of one source have identical ten-crop averages (up to summation "
                                 "order) for (t, t') = (0,4), (1,7), (2,5), (3,6): ten-crop is mirror-invariant",
        "variants": {}, "classify": {},
    }
    failures = []
    for variant in ("paper", "seed"):
        net, params, h7, stats = build(variant, crops)
        meta = {"variant": variant, "widths": ",".join(map(str, WIDTHS)), "hidden": str(HIDDEN),
                "classes": str(CLASSES), "input_size": str(CROP)}
        save_safetensors(params, os.path.join(a.out, f"{variant}.safetensors"), meta)
        res, avg = evaluate(net, variant, items, h7)
        res.update(stats)
        bad = check(variant, res, avg)
        expected["variants"][variant] = res
        expected["classify"][variant] = classify(net, variant, items)
        for k, v in expected["classify"][variant].items():
            for mode in ("center_crop", "ten_crop"):
                if v[mode]["min_margin_top5"] < 1e-4:
                    bad.append(f"classify {k} {mode}: top-5 margin {v[mode]['min_margin_top5']:.2e}")
        failures += [f"{variant}: {b}" for b in bad]
        print(f"{variant}: loss {res['loss']:.10f}  top1 {res['top1_error']:.6f} ({res['top1_wrong']}/48)  "
              f"top5 {res['top5_error']:.6f} ({res['top5_wrong']}/48)  min margin top1 {res['min_margin_top1']:.3e} "
              f"top5 {res['min_margin_top5']:.3e}"
              + (f"  clipped {res['fraction_of_crop_outputs_clipped_by_final_relu']:.3f}" if variant == "seed" else ""))
        for r in res["per_image"][:: 8]:
            print("   ", r["file"], r["label"], " ".join(f"{v:.4f}" for v in r["averaged_output"]), r["top5"])
        for k, v in expected["classify"][variant].items():
            print("    classify", k, "centre", [(i, round(p, 4)) for i, p in v["center_crop"]["top5"]],
                  "ten", [(i, round(p, 4)) for i, p in v["ten_crop"]["top5"]],
                  f"margins {v['center_crop']['min_margin_top5']:.2e} {v['ten_crop']['min_margin_top5']:.2e}")
        print("    zero fractions fc6 %.3f fc7 %.3f" % (stats["fc6_zero_fraction"], stats["fc7_zero_fraction"]),
              "images with a zero averaged output:", int((avg == 0).any(1).sum()))
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    if failures:
        raise SystemExit("degenerate fixture: " + "; ".join(failures))


if __name__ == "__main__":
    main()
