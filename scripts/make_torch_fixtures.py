"""Writes small PyTorch files and PyTorch's results on them, for the tests that read `.pt` files
natively (names as in the name tables of docs/DESIGN.md, Files), resume from the seed's checkpoint,
classify with them and export them to ONNX.

What it makes, in Tests/Fixtures/golden/torch/ (or OUT_DIR):
  seed_small.pt          a state dict under the seed's names (block1.0 ... head.7), written by
                         torch.save: the `seed` variant, widths 8/16/24/24/16, hidden 32, 10 classes,
                         input 224.
  seed_small_full.pt     the seed's full checkpoint of another network of that shape: {"epoch": 3,
                         "model": state dict, "optimizer": SGD's state dict (lr 0.01, momentum 0.9,
                         weight decay 5e-4, a momentum buffer per parameter after three steps),
                         "scheduler": ReduceLROnPlateau's state dict after one step on 0.9}.
  torchvision_small.pt   a state dict under torchvision's names (features.0 ... classifier.6): the
                         `torchvision` architecture, widths 8/16/24/16/16, hidden 32, 10 classes.
  expected.safetensors   x (2 x 3 x 224 x 224, N(0, 60^2)), each file's logits on x
                         (<name>.logits, F32), and the full checkpoint's momentum buffers in the state
                         dict's order (seed_small_full.momentum.<i>).
  images_expected.json   per photo (chelsea.rgb256.png, coffee.rgb256.png, 256 x 256) and per file,
                         PyTorch's top 5 [class index, probability] of the central 224 x 224 crop,
                         each file with its own normalisation (seed: minus the channel mean on the
                         0-255 scale; torchvision: x/255 minus (0.485, 0.456, 0.406), divided by
                         (0.229, 0.224, 0.225)); probabilities are the softmax of the outputs (for the
                         seed, of its ReLU'd outputs).

Logits and probabilities are computed in float64 from the float32 weights and inputs. Weights:
PyTorch's default initialisation under a fixed seed; in seed_small.pt and torchvision_small.pt the
last layer is scaled so that the photos' top 5 are well apart (the script fails unless every gap
between a photo's six largest probabilities is at least 1e-3, and no two of them are equal).

Run (under a minute on a CPU):
    python scripts/make_torch_fixtures.py [--out Tests/Fixtures/golden/torch] [--photos Tests/Fixtures/photos]
Needs torch, numpy, safetensors and Pillow (a virtual environment outside the repo).
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

F = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures", "golden", "torch"))
PHOTOS = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures", "photos"))

SEED_WIDTHS = [8, 16, 24, 24, 16]
TORCHVISION_WIDTHS = [8, 16, 24, 16, 16]
HIDDEN = 32
CLASSES = 10
INPUT = 224
BATCH = 2
MEAN = (123.675, 116.28, 103.53)
TV_MEAN, TV_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PHOTO_NAMES = ["chelsea.rgb256.png", "coffee.rgb256.png"]


class Seed(nn.Module):
    """The seed's AlexNet, with its module names: blocks of conv, ReLU, LRN (alpha 1e-3) and
    max-pool, and a head of dropout, fc6, ReLU, dropout, fc7, ReLU, fc8, ReLU."""

    def __init__(self, widths):
        super().__init__()
        w1, w2, w3, w4, w5 = widths

        def lrn():
            return nn.LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=2.0)

        self.block1 = nn.Sequential(nn.Conv2d(3, w1, 11, 4, 5), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2))
        self.block2 = nn.Sequential(nn.Conv2d(w1, w2, 5, 1, 2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2))
        self.block3 = nn.Sequential(nn.Conv2d(w2, w3, 3, 1, 1), nn.ReLU())
        self.block4 = nn.Sequential(nn.Conv2d(w3, w4, 3, 1, 1), nn.ReLU())
        self.block5 = nn.Sequential(nn.Conv2d(w4, w5, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(w5 * 6 * 6, HIDDEN), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES), nn.ReLU())

    def forward(self, x):
        for b in (self.block1, self.block2, self.block3, self.block4, self.block5, self.head):
            x = b(x)
        return x


class TorchVision(nn.Module):
    """torchvision's AlexNet (features, avgpool, classifier) at other widths."""

    def __init__(self, widths):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, w1, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w1, w2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(), nn.Conv2d(w3, w4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w4, w5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(w5 * 6 * 6, HIDDEN), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def state(model):
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}


def float64(model_class, widths, sd):
    """The network in float64 from the float32 state dict `sd`, in evaluation mode."""
    m = model_class(widths).double().eval()
    m.load_state_dict({k: v.to(F) for k, v in sd.items()})
    return m


def photo(path):
    a = np.asarray(Image.open(path).convert("RGB"))
    assert a.shape == (256, 256, 3), (path, a.shape)
    o = (256 - INPUT) // 2
    return torch.from_numpy(a[o:o + INPUT, o:o + INPUT].astype(np.float64)).permute(2, 0, 1)


def normalise(kind, pixels):
    if kind == "seed":
        return pixels - torch.tensor(MEAN, dtype=F).view(3, 1, 1)
    return (pixels / 255 - torch.tensor(TV_MEAN, dtype=F).view(3, 1, 1)) / torch.tensor(TV_STD, dtype=F).view(3, 1, 1)


def probabilities(model, kind, pixels):
    with torch.no_grad():
        return torch.softmax(model(normalise(kind, pixels)[None])[0], 0)


def scale_last_layer(model_class, widths, sd, last, kind, photos, target=3.0):
    """Scales the last layer's weights so that the outputs on the photos spread by about `target`,
    and (seed) shifts its bias so that its final ReLU clips only some of them."""
    m = float64(model_class, widths, sd)
    with torch.no_grad():
        outs = torch.stack([m(normalise(kind, p)[None])[0] for p in photos])
    factor = target / float(outs.std())
    sd[f"{last}.weight"] = (sd[f"{last}.weight"].to(F) * factor).to(torch.float32)
    if kind == "seed":
        m = float64(model_class, widths, sd)
        m.head[-1] = nn.Identity()
        with torch.no_grad():
            z = torch.stack([m(normalise(kind, p)[None])[0] for p in photos])
        sd[f"{last}.bias"] = (sd[f"{last}.bias"].to(F) - z.mean(0) + target).to(torch.float32)
    return sd


def top5_check(name, p):
    s = torch.sort(p, descending=True).values[:6]
    gap = float((s[:-1] - s[1:]).min())
    if gap < 1e-3:
        raise SystemExit(f"{name}: two of the six largest probabilities are {gap:.2e} apart: the top 5 is unclear")
    return gap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--photos", default=PHOTOS)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    photos = [photo(os.path.join(a.photos, n)) for n in PHOTO_NAMES]

    torch.manual_seed(20)
    seed_sd = scale_last_layer(Seed, SEED_WIDTHS, state(Seed(SEED_WIDTHS)), "head.7", "seed", photos)
    torch.manual_seed(21)
    tv_sd = scale_last_layer(TorchVision, TORCHVISION_WIDTHS, state(TorchVision(TORCHVISION_WIDTHS)), "classifier.6",
                             "torchvision", photos)

    # The full checkpoint: three SGD steps of a training run (dropout on), then the plateau
    # scheduler's first step.
    torch.manual_seed(22)
    model = Seed(SEED_WIDTHS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4)
    g = torch.Generator().manual_seed(23)
    for _ in range(3):
        optimizer.zero_grad()
        x = torch.randn(4, 3, INPUT, INPUT, generator=g) * 60
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, CLASSES, (4,), generator=g))
        loss.backward()
        optimizer.step()
    scheduler.step(0.9)
    full = {"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    full_sd = state(model)

    torch.save(seed_sd, os.path.join(a.out, "seed_small.pt"))
    torch.save(tv_sd, os.path.join(a.out, "torchvision_small.pt"))
    torch.save(full, os.path.join(a.out, "seed_small_full.pt"))

    g = torch.Generator().manual_seed(24)
    x = (torch.randn(BATCH, 3, INPUT, INPUT, generator=g, dtype=F) * 60).to(torch.float32)
    expected = {"x": x}
    for name, cls, widths, sd in [("seed_small", Seed, SEED_WIDTHS, seed_sd), ("seed_small_full", Seed, SEED_WIDTHS, full_sd),
                                  ("torchvision_small", TorchVision, TORCHVISION_WIDTHS, tv_sd)]:
        with torch.no_grad():
            expected[f"{name}.logits"] = float64(cls, widths, sd)(x.to(F)).to(torch.float32)
    buffers = optimizer.state_dict()["state"]
    for i in range(len(full_sd)):
        expected[f"seed_small_full.momentum.{i}"] = buffers[i]["momentum_buffer"].to(torch.float32).contiguous()
    save_file(expected, os.path.join(a.out, "expected.safetensors"))

    images = {}
    for n, p in zip(PHOTO_NAMES, photos):
        images[n] = {}
        for file, kind, cls, widths, sd in [("seed_small.pt", "seed", Seed, SEED_WIDTHS, seed_sd),
                                            ("torchvision_small.pt", "torchvision", TorchVision, TORCHVISION_WIDTHS, tv_sd)]:
            prob = probabilities(float64(cls, widths, sd), kind, p)
            gap = top5_check(f"{n} {file}", prob)
            v, i = torch.topk(prob, 5)
            images[n][file] = [[int(c), float(q)] for c, q in zip(i, v)]
            print(n, file, images[n][file], f"smallest gap {gap:.2e}")
    with open(os.path.join(a.out, "images_expected.json"), "w") as f:
        json.dump(images, f, indent=1)
    for name in ("seed_small", "seed_small_full", "torchvision_small"):
        print(name, expected[f"{name}.logits"])


if __name__ == "__main__":
    main()
