#!/usr/bin/env python3
"""Procedural product photos for the till's recognition model (no photo data set is
downloadable here).

Products come in brand families: every variant of a family shares the packaging shape
(box, can, bottle or bag), the brand colour, the logo and the brand name, and differs in an
accent colour, a band pattern, the flavour line and a size badge, the way look-alike
variants of one brand do on a shelf. A photo puts one product, rotated and in perspective,
on a cluttered background under uneven light, sometimes partly covered by a hand, with
blur and sensor noise.

Everything is drawn from seeds: `render(product, seed)` gives the same image for the same
arguments. `catalog()` names the products and which split each belongs to:

- `train`: families whose variants train the model;
- `new`: whole families kept out of training, enrolled from a few photos at evaluation;
- `unknown_cal` / `unknown_test`: families never enrolled; the first calibrates the
  abstention threshold, the second measures false accepts;
- `unknown_cal2`: more never-enrolled families, for `tillmesh vision eval --calibrate`
  (six families proved too few to set a 1% false-accept threshold).

Usage:
    vision_data.py --samples DIR        PNG samples to look at
    vision_data.py --eval-set DIR       the held-out set `tillmesh vision eval --data DIR`
                                        reads: known/{ref,query}/<sku>/, new/{ref,query}/<sku>/
                                        (new SKUs: 5 enrolment photos each), unknown/
"""

import argparse
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 224
SHAPES = ["box", "can", "bottle", "bag"]
# Appending a split keeps every earlier product as it was (the catalog draws in this order).
FAMILIES = {"train": 32, "new": 8, "unknown_cal": 6, "unknown_test": 6, "unknown_cal2": 40}
VARIANTS = 4
SYLLABLES = ["ka", "lo", "mi", "ra", "tu", "ve", "no", "si", "da", "po", "le", "zu", "fa",
             "go", "ri", "ta", "ne", "bo", "ha", "xi"]
FLAVOURS = ["Original", "Lemon", "Berry", "Mint", "Cocoa", "Spicy", "Light", "Honey",
            "Mango", "Salted", "Vanilla", "Grape"]


@dataclass(frozen=True)
class Product:
    sku: str
    family: int
    variant: int
    split: str
    shape: str
    brand: str
    base: tuple
    logo: int
    accent: tuple
    band: int
    flavour: str
    size: str


def _colour(rng):
    h = rng.random()
    s = rng.uniform(0.45, 1.0)
    v = rng.uniform(0.35, 0.95)
    i = int(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return (int(r * 255), int(g * 255), int(b * 255))


def catalog(seed=7):
    """Every product of every split, in a fixed order."""
    rng = random.Random(seed)
    out = []
    fam = 0
    for split, n in FAMILIES.items():
        for _ in range(n):
            brand = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()
            shape = SHAPES[fam % len(SHAPES)]
            base = _colour(rng)
            logo = rng.randrange(6)
            # Variants of a family: distinct accents and bands, the rest shared.
            accents = []
            while len(accents) < VARIANTS:
                c = _colour(rng)
                if all(sum(abs(a - b) for a, b in zip(c, o)) > 150 for o in accents + [base]):
                    accents.append(c)
            bands = rng.sample(range(5), VARIANTS)
            flavours = rng.sample(FLAVOURS, VARIANTS)
            for v in range(VARIANTS):
                out.append(Product(
                    sku=f"V{fam:03d}{v}", family=fam, variant=v, split=split, shape=shape,
                    brand=brand, base=base, logo=logo, accent=accents[v], band=bands[v],
                    flavour=flavours[v], size=rng.choice(["250g", "500g", "1L", "330ml", "6x"]),
                ))
            fam += 1
    return out


def _font(size):
    for name in ["DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"]:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default()


def _package(p, rng):
    """The product's front, upright, on a transparent canvas."""
    w, h = {"box": (120, 160), "can": (96, 170), "bottle": (80, 190), "bag": (130, 160)}[p.shape]
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if p.shape == "box":
        body = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    elif p.shape == "can":
        body = [(0, 8), (w - 1, 8), (w - 1, h - 9), (0, h - 9)]
    elif p.shape == "bottle":
        body = [(w * 0.35, 0), (w * 0.65, 0), (w * 0.65, 30), (w - 1, 55), (w - 1, h - 1),
                (0, h - 1), (0, 55), (w * 0.35, 30)]
    else:
        body = [(6, 0), (w - 7, 0), (w - 1, h - 1), (0, h - 1)]
    d.polygon(body, fill=p.base + (255,))
    if p.shape == "can":
        d.ellipse([0, 0, w - 1, 16], fill=tuple(min(255, c + 40) for c in p.base) + (255,))
        d.ellipse([0, h - 17, w - 1, h - 1], fill=tuple(c // 2 for c in p.base) + (255,))
    top = 60 if p.shape == "bottle" else 14
    # The variant's band: its pattern and accent colour.
    y0, y1 = int(h * 0.55), int(h * 0.72)
    a = p.accent + (255,)
    if p.band == 0:
        d.rectangle([0, y0, w, y1], fill=a)
    elif p.band == 1:
        for x in range(-h, w, 14):
            d.polygon([(x, y1), (x + 7, y1), (x + 7 + (y1 - y0), y0), (x + (y1 - y0), y0)], fill=a)
    elif p.band == 2:
        for x in range(4, w, 16):
            d.ellipse([x, y0 + 2, x + 11, y0 + 13], fill=a)
            d.ellipse([x + 6, y1 - 12, x + 15, y1 - 3], fill=a)
    elif p.band == 3:
        d.rectangle([0, y0, w, y0 + 6], fill=a)
        d.rectangle([0, y1 - 6, w, y1], fill=a)
        d.rectangle([0, y0 + 10, w, y1 - 10], fill=a)
    else:
        pts = [(x, y0 + (6 if (x // 10) % 2 else 0) + 3) for x in range(0, w + 10, 10)]
        d.line(pts, fill=a, width=7)
        d.line([(x, y + 9) for x, y in pts], fill=a, width=5)
    # The family's logo.
    cx, cy, r = w // 2, top + 26, 18
    ink = tuple(255 - c for c in p.base) + (255,)
    if p.logo == 0:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=ink)
    elif p.logo == 1:
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=ink)
    elif p.logo == 2:
        d.rectangle([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=ink)
    elif p.logo == 3:
        pts = [(cx + r * math.cos(k * math.pi / 5 - math.pi / 2) * (1 if k % 2 == 0 else 0.45),
                cy + r * math.sin(k * math.pi / 5 - math.pi / 2) * (1 if k % 2 == 0 else 0.45))
               for k in range(10)]
        d.polygon(pts, fill=ink)
    elif p.logo == 4:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ink, width=6)
    else:
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=ink)
    d.text((w // 2, top + 58), p.brand, fill=ink, font=_font(16), anchor="mm")
    d.text((w // 2, y0 - 10), p.flavour, fill=p.accent + (255,), font=_font(13), anchor="mm")
    d.rounded_rectangle([w - 40, h - 30, w - 6, h - 12], radius=4, fill=(250, 250, 250, 255))
    d.text((w - 23, h - 21), p.size, fill=(20, 20, 20, 255), font=_font(10), anchor="mm")
    return im


def _background(rng):
    bg = Image.new("RGB", (SIZE, SIZE), _colour(rng))
    d = ImageDraw.Draw(bg)
    for _ in range(rng.randint(4, 14)):
        x, y = rng.randrange(-40, SIZE), rng.randrange(-40, SIZE)
        s = rng.randint(20, 120)
        c = _colour(rng)
        if rng.random() < 0.5:
            d.rectangle([x, y, x + s, y + rng.randint(10, 90)], fill=c)
        else:
            d.ellipse([x, y, x + s, y + s], fill=c)
    return bg.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))


def _perspective(im, rng):
    w, h = im.size
    j = lambda: rng.uniform(-0.12, 0.12)
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(w * j(), h * j()), (w * (1 + j()), h * j()), (w * (1 + j()), h * (1 + j())),
           (w * j(), h * (1 + j()))]
    # Coefficients for PIL's PERSPECTIVE transform (output -> input mapping).
    import numpy as np
    a = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = [c for pt in src for c in pt]
    coef = np.linalg.solve(np.array(a, dtype=float), np.array(b, dtype=float))
    return im.transform((w, h), Image.PERSPECTIVE, tuple(coef), Image.BILINEAR)


def render(p, seed):
    """One photo of product `p`: deterministic in (p, seed)."""
    import numpy as np
    rng = random.Random(f"{p.sku}:{seed}")
    pack = _perspective(_package(p, rng), rng)
    scale = rng.uniform(0.75, 1.15)
    pack = pack.resize((max(8, int(pack.width * scale)), max(8, int(pack.height * scale))),
                       Image.BILINEAR)
    pack = pack.rotate(rng.uniform(-35, 35), resample=Image.BILINEAR, expand=True)
    img = _background(rng)
    x = (SIZE - pack.width) // 2 + rng.randint(-25, 25)
    y = (SIZE - pack.height) // 2 + rng.randint(-20, 20)
    img.paste(pack, (x, y), pack)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.4:
        # A hand holding it: a skin-toned palm and fingers over one side.
        skin = rng.choice([(224, 172, 138), (198, 134, 96), (141, 85, 36), (255, 205, 170)])
        side = rng.choice([-1, 1])
        hx = x + (0 if side < 0 else pack.width) + side * rng.randint(-10, 20)
        hy = y + pack.height // 2 + rng.randint(-40, 40)
        d.ellipse([hx - 38, hy - 30, hx + 38, hy + 30], fill=skin)
        for k in range(4):
            fy = hy - 30 + k * 17
            d.rounded_rectangle([hx - side * 10 - 45 * (side < 0), fy,
                                 hx - side * 10 + 45 * (side > 0), fy + 13],
                                radius=6, fill=skin)
    arr = np.asarray(img).astype(np.float32)
    # Uneven light: a gradient in a random direction, and a global gain.
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE - 0.5
    light = 1 + rng.uniform(0.1, 0.5) * (np.cos(ang) * xx + np.sin(ang) * yy)
    arr = arr * light[..., None] * rng.uniform(0.7, 1.25)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6)))
    arr = np.asarray(img).astype(np.float32)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    arr = arr + nrng.normal(0, rng.uniform(2, 9), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def eval_set(out, ref=4, query=4, enrol=5, unknown=5, per_split=None, ext="png"):
    """Writes the held-out evaluation set (photo seeds the training never draws); with
    `per_split`, only that many SKUs of each split (the tests' small set)."""
    cat = catalog()
    if per_split:
        cat = [p for split in ["train", "new", "unknown_test"]
               for p in [q for q in cat if q.split == split][:per_split]]
    n = 0
    for p in cat:
        groups = {"train": [("known/ref", 10_000, ref), ("known/query", 30_000, query)],
                  "new": [("new/ref", 20_000, enrol), ("new/query", 40_000, query)],
                  "unknown_test": [("unknown", 60_000, unknown)]}.get(p.split, [])
        for sub, base, count in groups:
            d = out / sub / p.sku if sub != "unknown" else out / sub
            d.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                name = f"{k}.{ext}" if sub != "unknown" else f"{p.sku}-{k}.{ext}"
                render(p, base + k).save(d / name, quality=90) if ext == "jpg" else \
                    render(p, base + k).save(d / name)
                n += 1
    return n


def calibration_set(out, photos=4):
    """Photos of the calibration families (`unknown_cal`, `unknown_cal2`), never enrolled
    and never in the evaluation set, as `out/<sku>-<k>.jpg`."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for p in catalog():
        if p.split in ("unknown_cal", "unknown_cal2"):
            for k in range(photos):
                render(p, 80_000 + k).save(out / f"{p.sku}-{k}.jpg", quality=90)
                n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=Path)
    ap.add_argument("--eval-set", type=Path)
    ap.add_argument("--test-set", type=Path, help="the small JPEG set the tests read")
    ap.add_argument("--calibration-set", type=Path,
                    help="photos of never-enrolled families to calibrate the threshold on")
    ap.add_argument("--n", type=int, default=24)
    a = ap.parse_args()
    cat = catalog()
    if a.samples:
        a.samples.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(cat[: a.n]):
            render(p, i).save(a.samples / f"{p.sku}-{p.split}.png")
        print(f"{len(cat)} products; {a.n} samples in {a.samples}")
    if a.eval_set:
        print(f"{eval_set(a.eval_set)} photos in {a.eval_set}")
    if a.calibration_set:
        print(f"{calibration_set(a.calibration_set)} photos in {a.calibration_set}")
    if a.test_set:
        n = eval_set(a.test_set, ref=3, query=1, enrol=3, unknown=1, per_split=4, ext="jpg")
        print(f"{n} photos in {a.test_set}")
    if not (a.samples or a.eval_set or a.test_set):
        ap.error("give --samples DIR, --eval-set DIR or --test-set DIR")


if __name__ == "__main__":
    main()
