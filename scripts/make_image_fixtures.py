"""Writes the image fixtures in Tests/Fixtures with Pillow (run once; the outputs are committed).

Decoder fixtures (python make_image_fixtures.py PHOTOS OUT_DIR, written to Tests/Fixtures/images):
- <photo>.pillow256.png: Pillow's open + convert("RGB") + resize(shorter side 256, BICUBIC) + central
  crop for the odd photos in PHOTOS that have no reference there (CMYK, progressive), and
  for odd420.jpg, sub422.jpg and sub444.jpg (447×299 cuts of chelsea.jpg in those chroma layouts).
- png_<kind>.png and png_<kind>.rgb.png: PNG variants (16-bit RGB, 16-bit gray, palette, gray+alpha,
  RGBA, 1-bit) and what Pillow's convert("RGB") makes of them (16-bit: the high byte).

The photo set (python make_image_fixtures.py --photos PHOTOS OUT_DIR, written to Tests/Fixtures/photos),
what the image, evaluation and PyTorch-file tests read:
- astronaut, chelsea, coffee, gray, rocket and small .jpg, copied from PHOTOS, with
  <name>.rgb256.png, Pillow's result for each (the same preprocessing as above); the script checks
  that these equal the references in PHOTOS pixel for pixel where PHOTOS has them.
- cmyk.jpg (Adobe CMYK), progressive.jpg, and the broken files truncated.jpg (a JPEG cut short),
  not_an_image.jpg and empty.jpg (0 bytes), copied.
- coffee.png: a PNG photo, Pillow's lossless copy of the central 300×200 cut of coffee.jpg.

PHOTOS is the project's folder of sample photos (the images/ folder beside the full golden set).
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image

photos = sys.argv[1] == "--photos"
src, out = sys.argv[1 + photos], sys.argv[2 + photos]
os.makedirs(out, exist_ok=True)


def preprocess(im):
    im = im.convert("RGB")
    w, h = im.size
    r = 256 / min(w, h)
    im = im.resize((round(w * r), round(h * r)), Image.BICUBIC)
    w, h = im.size
    return im.crop(((w - 256) // 2, (h - 256) // 2, (w - 256) // 2 + 256, (h - 256) // 2 + 256))


def photo_set():
    for name in ["astronaut", "chelsea", "coffee", "gray", "rocket", "small"]:
        shutil.copyfile(os.path.join(src, name + ".jpg"), os.path.join(out, name + ".jpg"))
        ours = preprocess(Image.open(os.path.join(out, name + ".jpg")))
        reference = os.path.join(src, name + ".rgb256.png")
        if os.path.exists(reference):
            assert np.array_equal(np.asarray(ours), np.asarray(Image.open(reference).convert("RGB"))), name
        ours.save(os.path.join(out, name + ".rgb256.png"), optimize=True)
    for name in ["cmyk.jpg", "progressive.jpg", "truncated.jpg", "not_an_image.jpg", "empty.jpg"]:
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
    coffee = Image.open(os.path.join(src, "coffee.jpg")).convert("RGB")
    w, h = coffee.size
    coffee.crop(((w - 300) // 2, (h - 200) // 2, (w + 300) // 2, (h + 200) // 2)).save(os.path.join(out, "coffee.png"), optimize=True)
    for f in sorted(os.listdir(out)):
        print(f, os.path.getsize(os.path.join(out, f)))


if photos:
    photo_set()
    sys.exit()

for name in ["cmyk", "progressive"]:
    im = Image.open(os.path.join(src, name + ".jpg"))
    print(name, im.mode, im.size)
    preprocess(im).save(os.path.join(out, name + ".pillow256.png"))

# Chroma layouts other than 4:2:0 at an even size (for the Y'CbCr path of preprocess): odd sizes,
# 4:4:4 and 4:2:2, a 447×299 cut from inside chelsea.jpg (451×300), with Pillow's result from the
# saved file.
chelsea = Image.open(os.path.join(src, "chelsea.jpg")).convert("RGB")
assert chelsea.size == (451, 300)
for name, subsampling in [("odd420", 2), ("sub422", 1), ("sub444", 0)]:
    path = os.path.join(out, name + ".jpg")
    chelsea.crop((2, 1, 2 + 447, 1 + 299)).save(path, quality=92, subsampling=subsampling)
    preprocess(Image.open(path)).save(os.path.join(out, name + ".pillow256.png"))

rng = np.random.default_rng(3)
h, w = 37, 53
rgb16 = (rng.integers(0, 65536, (h, w, 3))).astype(">u2")
gray16 = (rng.integers(0, 65536, (h, w))).astype(">u2")


# 16-bit files are written by a minimal encoder (Pillow writes 16-bit gray only).
import struct
import zlib


def png16(path, arr, color_type):
    hh, ww = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(hh))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", ww, hh, 16, color_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


png16(os.path.join(out, "png_rgb16.png"), rgb16, 2)
Image.fromarray((rgb16 >> 8).astype(np.uint8), "RGB").save(os.path.join(out, "png_rgb16.rgb.png"))
png16(os.path.join(out, "png_gray16.png"), gray16, 0)
g8 = (gray16 >> 8).astype(np.uint8)
Image.fromarray(np.stack([g8] * 3, -1), "RGB").save(os.path.join(out, "png_gray16.rgb.png"))

base = Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), "RGB")
kinds = {
    "palette": base.quantize(37),
    "gray_alpha": base.convert("LA"),
    "rgba": base.convert("RGBA"),
    "bilevel": base.convert("1"),
}
for kind, im in kinds.items():
    im.save(os.path.join(out, f"png_{kind}.png"))
    Image.open(os.path.join(out, f"png_{kind}.png")).convert("RGB").save(os.path.join(out, f"png_{kind}.rgb.png"))
for f in sorted(os.listdir(out)):
    print(f, Image.open(os.path.join(out, f)).mode)
