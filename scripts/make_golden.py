"""Writes a golden set with PyTorch, in the format `alexnet verify` reads (docs/NUMERICS.md).

Math runs in float64 and results are stored as float32, as in the project's full golden set. The
configuration (widths, hidden width, classes, batch, input size, seed) is free, so `alexnet verify`
can be checked on networks other than the shipped ones.

Usage: python make_golden.py OUT_DIR [--widths 8 16 24 24 16] [--hidden 64] [--classes 7]
                             [--batch 3] [--input 195] [--seed 7] [--variants paper seed]
                             [--layer-cases alt|spec] [--net-name 'net_{variant}'] [--tencrop]
Needs torch, numpy and safetensors (a virtual environment outside the repo: the tests' .build/pyenv
has no torch).

The two sets in Tests/Fixtures were written with
  golden-alt: python scripts/make_golden.py Tests/Fixtures/golden-alt
  golden:     python scripts/make_golden.py Tests/Fixtures/golden --layer-cases spec --widths 8 16 16 24 16
                  --hidden 32 --classes 10 --batch 4 --input 89 --seed 11 --net-name 'net_small_{variant}' --tencrop
The second has the file names, layer case names and tensor names of the shared golden set (the
full one, found through ALEXNET_SHARED; see docs/NUMERICS.md), which the tests read, at sizes that
keep it small: batch 4 as in the shared set, and a conv3 case at batch 4 with 64 channels in and
out, which the Winograd kernel computes where oneDNN's convolutions are AVX2 ones.
"""
import argparse
import json
import os

import torch
from torch import nn
from safetensors.torch import save_file

F = torch.float64


def f32(t):
    """Rounds to float32 and back, so inputs are exactly what the Swift side reads."""
    return t.to(torch.float32).to(F)


def store(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def save_with_xent(path, t, cases, logits, g):
    """Adds the softmax cross-entropy case (random labels for `logits`, mean over the batch) to
    the layer tensors `t` and writes the file."""
    labels = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=g)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    t.update({"xent.logits": logits, "xent.loss": loss.reshape(1), "xent.probs": torch.softmax(logits, 1),
              "xent.dlogits": logits.grad})
    cases["xent"] = {"reduction": "mean"}
    out = store(t)
    out["xent.labels"] = labels.to(torch.int64)
    save_file(out, path, metadata={"cases": json.dumps(cases)})


def layers_file(path, g):
    t, cases = {}, {}

    def rnd(*shape, scale=1.0):
        return f32(torch.randn(*shape, generator=g, dtype=F) * scale)

    for name, (n, c, h, w, k, ks, s, p) in {
        "conv_a": (2, 3, 37, 41, 8, 11, 4, 5),
        "conv_b": (3, 6, 10, 9, 5, 5, 2, 0),
        "conv_c": (2, 7, 8, 8, 9, 3, 1, 2),
    }.items():
        x, wt, b = rnd(n, c, h, w), rnd(k, c, ks, ks, scale=0.1), rnd(k, scale=0.1)
        x.requires_grad_(True); wt.requires_grad_(True); b.requires_grad_(True)
        y = nn.functional.conv2d(x, wt, b, stride=s, padding=p)
        dy = rnd(*y.shape)
        y.backward(dy)
        t.update({f"{name}.x": x, f"{name}.w": wt, f"{name}.b": b, f"{name}.y": y, f"{name}.dy": dy,
                  f"{name}.dx": x.grad, f"{name}.dw": wt.grad, f"{name}.db": b.grad})
        cases[name] = {"stride": s, "padding": p}
    for name, alpha in {"lrn_p": 5e-4, "lrn_s": 1e-3}.items():
        x = rnd(2, 11, 7, 5, scale=20.0).requires_grad_(True)
        y = nn.functional.local_response_norm(x, 5, alpha=alpha, beta=0.75, k=2.0)
        dy = rnd(*y.shape)
        y.backward(dy)
        t.update({f"{name}.x": x, f"{name}.y": y, f"{name}.dy": dy, f"{name}.dx": x.grad})
        cases[name] = {"size": 5, "torch_alpha": alpha, "beta": 0.75, "k": 2.0}
    x = rnd(3, 5, 13, 12).requires_grad_(True)
    y = nn.functional.max_pool2d(x, 3, 2)
    dy = rnd(*y.shape)
    y.backward(dy)
    t.update({"maxpool.x": x, "maxpool.y": y, "maxpool.dy": dy, "maxpool.dx": x.grad})
    cases["maxpool"] = {"kernel": 3, "stride": 2}
    x, wt, b = rnd(5, 33).requires_grad_(True), rnd(17, 33, scale=0.2).requires_grad_(True), rnd(17).requires_grad_(True)
    y = nn.functional.linear(x, wt, b)
    dy = rnd(*y.shape)
    y.backward(dy)
    t.update({"linear.x": x, "linear.w": wt, "linear.b": b, "linear.y": y, "linear.dy": dy,
              "linear.dx": x.grad, "linear.dw": wt.grad, "linear.db": b.grad})
    save_with_xent(path, t, cases, rnd(6, 13, scale=3.0).requires_grad_(True), g)


def spec_layers_file(path, g):
    """The shared golden set's layer cases (conv1, conv2, conv3, conv_odd, lrn_paper, lrn_seed,
    maxpool, linear, xent) with their geometries and value scales, at small sizes."""
    t, cases = {}, {}

    def rnd(*shape, scale=1.0):
        return f32(torch.randn(*shape, generator=g, dtype=F) * scale)

    def grads(name, y, x, params):
        dy = rnd(*y.shape)
        y.backward(dy)
        t.update({f"{name}.x": x, f"{name}.y": y, f"{name}.dy": dy, f"{name}.dx": x.grad})
        for k, p in params.items():
            t[f"{name}.{k}"], t[f"{name}.d{k}"] = p, p.grad

    # (batch, in, height, width, out, kernel, stride, padding, weight scale, bias scale)
    for name, (n, c, h, w, k, ks, s, p, ws, bs) in {
        "conv1": (2, 3, 51, 51, 8, 11, 4, 5, 0.01, 0.1),     # conv1's geometry: 51 -> 13
        "conv2": (2, 16, 13, 13, 24, 5, 1, 2, 0.01, 0.1),    # conv2's
        "conv3": (4, 64, 5, 5, 64, 3, 1, 1, 0.01, 0.1),      # conv3's, Winograd-sized: C*K/(C+K) = 32, batch 4
        "conv_odd": (3, 5, 9, 11, 7, 3, 2, 1, 0.01, 0.05),   # odd sizes, stride 2
    }.items():
        x = rnd(n, c, h, w, scale=50.0).requires_grad_(True)
        wt, b = rnd(k, c, ks, ks, scale=ws).requires_grad_(True), rnd(k, scale=bs).requires_grad_(True)
        grads(name, nn.functional.conv2d(x, wt, b, stride=s, padding=p), x, {"w": wt, "b": b})
        cases[name] = {"stride": s, "padding": p}
    x = f32(torch.relu(torch.randn(2, 13, 9, 7, generator=g, dtype=F) * 30))
    for name, alpha in {"lrn_paper": 5e-4, "lrn_seed": 1e-3}.items():
        xl = x.clone().requires_grad_(True)
        grads(name, nn.functional.local_response_norm(xl, 5, alpha=alpha, beta=0.75, k=2.0), xl, {})
        cases[name] = {"size": 5, "torch_alpha": alpha, "paper_alpha": alpha / 5, "beta": 0.75, "k": 2.0}
    x = rnd(2, 8, 13, 13).requires_grad_(True)
    grads("maxpool", nn.functional.max_pool2d(x, 3, 2), x, {})
    cases["maxpool"] = {"kernel": 3, "stride": 2}
    x, wt, b = rnd(4, 64).requires_grad_(True), rnd(32, 64, scale=0.05).requires_grad_(True), rnd(32).requires_grad_(True)
    grads("linear", nn.functional.linear(x, wt, b), x, {"w": wt, "b": b})
    save_with_xent(path, t, cases, rnd(8, 1000, scale=3.0).requires_grad_(True), g)


def tencrop_file(path, g):
    """Ten-crop windows (docs/DESIGN.md, Evaluation) of two images: the four corners and the
    centre, then the same of the left-right mirrored image."""
    image = f32(torch.randn(2, 3, 20, 18, generator=g, dtype=F))
    s, (h, w) = 16, image.shape[2:]
    top, left = (h - s) // 2, (w - s) // 2  # torchvision's centre_crop rounds (h - s) / 2; both even here

    def five(im):
        return [im[..., :s, :s], im[..., :s, w - s:], im[..., h - s:, :s], im[..., h - s:, w - s:],
                im[..., top:top + s, left:left + s]]

    crops = torch.stack(five(image) + five(image.flip(-1)))
    config = {"crop": s, "order": "tl,tr,bl,br,center, then the same of the horizontally flipped image"}
    save_file(store({"image": image, "crops": crops}), path, metadata={"config": json.dumps(config)})


def network(variant, widths, hidden, classes, alpha):
    w1, w2, w3, w4, w5 = widths
    trunk = [nn.Conv2d(3, w1, 11, 4, 5), nn.ReLU(), nn.LocalResponseNorm(5, alpha, 0.75, 2.0), nn.MaxPool2d(3, 2),
             nn.Conv2d(w1, w2, 5, 1, 2), nn.ReLU(), nn.LocalResponseNorm(5, alpha, 0.75, 2.0), nn.MaxPool2d(3, 2),
             nn.Conv2d(w2, w3, 3, 1, 1), nn.ReLU(), nn.Conv2d(w3, w4, 3, 1, 1), nn.ReLU(),
             nn.Conv2d(w4, w5, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten()]
    return nn.Sequential(*trunk).to(F)


def net_file(path, variant, a, g):
    alpha = 5e-4 if variant == "paper" else 1e-3
    trunk = network(variant, a.widths, a.hidden, a.classes, alpha)
    with torch.no_grad():
        flat = trunk(torch.zeros(1, 3, a.input, a.input, dtype=F)).shape[1]
    fcs = [nn.Linear(flat, a.hidden).to(F), nn.Linear(a.hidden, a.hidden).to(F), nn.Linear(a.hidden, a.classes).to(F)]
    names = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    convs = [m for m in trunk if isinstance(m, nn.Conv2d)]
    params = {}
    for n, m in list(zip(names, convs)) + list(zip(["fc6", "fc7", "fc8"], fcs)):
        # PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as the full golden set does:
        # it keeps activations in range, so the comparison measures rounding, not divergence.
        bound = 1 / (m.weight[0].numel() ** 0.5)
        with torch.no_grad():
            m.weight.copy_(f32((torch.rand(m.weight.shape, generator=g, dtype=F) * 2 - 1) * bound))
            m.bias.copy_(f32((torch.rand(m.bias.shape, generator=g, dtype=F) * 2 - 1) * bound))
        params[f"{n}.weight"], params[f"{n}.bias"] = m.weight, m.bias
    x = f32(torch.randn(a.batch, 3, a.input, a.input, generator=g, dtype=F) * 60)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)
    first = flat if variant == "seed" else a.hidden
    mask_a = (torch.rand(a.batch, first, generator=g, dtype=F) >= 0.5).to(F) * 2
    mask_b = (torch.rand(a.batch, a.hidden, generator=g, dtype=F) >= 0.5).to(F) * 2
    relu = nn.functional.relu

    def forward(train):
        h = trunk(x)
        if variant == "paper":
            h = relu(fcs[0](h)); h = h * mask_a if train else h
            h = relu(fcs[1](h)); h = h * mask_b if train else h
            return fcs[2](h)
        h = h * mask_a if train else h
        h = relu(fcs[0](h)); h = h * mask_b if train else h
        h = relu(fcs[1](h))
        return relu(fcs[2](h))

    t = {f"init.{k}": v.detach().clone() for k, v in params.items()}
    with torch.no_grad():
        t["eval_logits"] = forward(False)
    opt = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for step in (1, 2):
        opt.zero_grad()
        logits = forward(True)
        loss = nn.functional.cross_entropy(logits, labels)
        loss.backward()
        t[f"step{step}.logits"], t[f"step{step}.loss"] = logits, loss.reshape(1)
        for k, v in params.items():
            t[f"step{step}.grad.{k}"] = v.grad.clone()
        opt.step()
        for k, v in params.items():
            t[f"step{step}.after.{k}"] = v.detach().clone()
    t.update({"x": x, "mask_a": mask_a, "mask_b": mask_b})
    out = store(t)
    out["labels"] = labels.to(torch.int64)
    config = {"variant": variant, "widths": a.widths, "hidden": a.hidden, "classes": a.classes, "batch": a.batch,
              "lrn": {"size": 5, "torch_alpha": alpha, "beta": 0.75, "k": 2.0},
              "conv1": {"kernel": 11, "stride": 4, "padding": 5},
              "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "nesterov": False, "dampening": 0}}
    save_file(out, path, metadata={"config": json.dumps(config)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--widths", type=int, nargs=5, default=[8, 16, 24, 24, 16])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--input", type=int, default=195)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--variants", nargs="+", default=["paper", "seed"])
    ap.add_argument("--no-layers", action="store_true")
    ap.add_argument("--layer-cases", choices=["alt", "spec"], default="alt",
                    help="alt: conv_a, conv_b, conv_c, lrn_p, lrn_s, ...; spec: the shared golden set's case names")
    ap.add_argument("--net-name", default="net_{variant}", help="file name of each network, without .safetensors")
    ap.add_argument("--tencrop", action="store_true", help="also write tencrop.safetensors")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    if not a.no_layers:
        (spec_layers_file if a.layer_cases == "spec" else layers_file)(os.path.join(a.out, "layers.safetensors"), g)
    for v in a.variants:
        net_file(os.path.join(a.out, a.net_name.format(variant=v) + ".safetensors"), v, a, g)
    if a.tencrop:
        tencrop_file(os.path.join(a.out, "tencrop.safetensors"), g)


if __name__ == "__main__":
    main()
