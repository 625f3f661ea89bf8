#!/usr/bin/env python3
"""Out-of-distribution photo source "shelf": product photos written from a specification of
its own, sharing no code with the training generator (`vision_data.py`).

Specification (deliberately unlike the training photos):
- packaging: jars with lids, gable-top cartons, pouches, short tins, tubes and trays, drawn
  with shading across their width (cylinders darken towards the edges) and a glossy highlight;
- labels in one of five layouts (top banner, diagonal sash, framed panel, side stripe,
  full-bleed two-tone), words set in the Liberation fonts (serif, narrow, mono);
- look-alike families: the variants of a brand share shape, layout, colours, emblem and
  wordmark, and differ in one of: the variety word, the net weight (small print), a colour
  chip, or the label's tint, so that some families differ only in small print;
- camera: a 320x240 landscape frame (the till crops its centre square), the product filling
  40-95% of the height, rotated up to 20 degrees, seen through a quadrilateral warp, on a
  wood, tile or fabric texture, a neighbouring product cut by the frame edge, a cast
  shadow, vignetting, colour temperature, motion blur and JPEG compression.

Usage: ood_shelf.py --eval-set DIR [--known 100 --new 40 --unknown 40 --ref 5 --query 4]
writes the layout `tillmesh vision eval --data DIR` reads.
"""

import argparse
import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/liberation")
FONTS = ["LiberationSerif-Bold", "LiberationSansNarrow-Bold", "LiberationMono-Bold",
         "LiberationSerif-BoldItalic", "LiberationSans-Italic", "LiberationSansNarrow-Regular"]
SHAPES = ["jar", "carton", "pouch", "tin", "tube", "tray"]
LAYOUTS = ["banner", "sash", "panel", "stripe", "twotone"]
DIFFS = ["variety", "weight", "chip", "tint"]
WORDS = ["Classic", "Decaf", "Strong", "Mild", "Organic", "Smoky", "Sweet", "Extra", "Zero",
         "Family", "Gold", "Fresh", "Crunchy", "Smooth", "Dark", "Pure"]
NAMES = ["Brava", "Koru", "Mesa", "Tilde", "Orvo", "Pampa", "Quill", "Rune", "Sable", "Vanta",
         "Wren", "Yuzu", "Alder", "Cobalt", "Dune", "Fjord", "Gale", "Haven", "Iris", "Juno"]
W, H = 320, 240


def font(name, size):
    return ImageFont.truetype(str(FONT_DIR / f"{name}.ttf"), size)


def hsv(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def families(n, seed):
    """`n` brand families of 3-5 variants, from `seed`."""
    rng = random.Random(seed)
    out = []
    for f in range(n):
        name = rng.choice(NAMES) + rng.choice(["", " & Co", "s", "ia", "o"])
        fam = dict(name=name, shape=rng.choice(SHAPES), layout=rng.choice(LAYOUTS),
                   body=hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95)),
                   label=hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.7, 1.0)),
                   ink=hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.6)),
                   font=rng.choice(FONTS), emblem=rng.randrange(4), sides=rng.randint(3, 8),
                   diff=rng.choice(DIFFS))
        words = rng.sample(WORDS, 5)
        weights = rng.sample(["200 g", "400 g", "750 g", "1 kg", "330 ml", "500 ml", "1.5 L"], 5)
        variants = []
        for v in range(rng.randint(3, 5)):
            var = dict(word=words[0], weight=weights[0], chip=None, tint=0.0)
            if fam["diff"] == "variety":
                var["word"] = words[v]
            elif fam["diff"] == "weight":
                var["weight"] = weights[v]
            elif fam["diff"] == "chip":
                var["chip"] = hsv(v / 5 + rng.uniform(0, 0.05), 0.9, 0.85)
            else:
                var["tint"] = v / 5
                var["word"] = words[v]
            variants.append(var)
        out.append((fam, variants))
    return out


def label(fam, var):
    """The front of one product, upright, RGBA."""
    w, h = {"jar": (150, 170), "carton": (110, 200), "pouch": (140, 180), "tin": (160, 120),
            "tube": (70, 200), "tray": (190, 110)}[fam["shape"]]
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    body = fam["body"]
    if fam["shape"] == "jar":
        d.rectangle([10, 0, w - 11, 22], fill=(60, 60, 60, 255))
        d.rounded_rectangle([0, 20, w - 1, h - 1], 18, fill=body + (255,))
        box = [8, 50, w - 9, h - 25]
    elif fam["shape"] == "carton":
        d.polygon([(0, 30), (w // 2, 0), (w - 1, 30), (w - 1, h - 1), (0, h - 1)], fill=body + (255,))
        box = [6, 40, w - 7, h - 10]
    elif fam["shape"] == "pouch":
        d.polygon([(8, 0), (w - 9, 0), (w - 1, h - 1), (0, h - 1)], fill=body + (255,))
        d.line([(10, 14), (w - 11, 14)], fill=(255, 255, 255, 160), width=2)
        box = [12, 26, w - 13, h - 12]
    elif fam["shape"] == "tin":
        d.rounded_rectangle([0, 0, w - 1, h - 1], 10, fill=body + (255,))
        box = [6, 12, w - 7, h - 13]
    elif fam["shape"] == "tube":
        d.polygon([(0, 0), (w - 1, 0), (w - 16, h - 20), (16, h - 20)], fill=body + (255,))
        d.rectangle([w // 2 - 12, h - 22, w // 2 + 12, h - 1], fill=(240, 240, 240, 255))
        box = [6, 8, w - 7, h - 30]
    else:
        d.rectangle([0, 0, w - 1, h - 1], fill=body + (255,))
        box = [8, 8, w - 9, h - 9]
    lab = tuple(int(c * (1 - var["tint"] * 0.35) + body[i] * var["tint"] * 0.35)
                for i, c in enumerate(fam["label"]))
    x0, y0, x1, y1 = box
    lay = fam["layout"]
    if lay == "banner":
        d.rectangle([x0, y0, x1, y0 + (y1 - y0) // 3], fill=lab + (255,))
    elif lay == "sash":
        d.polygon([(x0, y1 - 20), (x0, y1), (x1, y0 + 20), (x1, y0)], fill=lab + (255,))
    elif lay == "panel":
        d.rectangle([x0 + 6, y0 + 6, x1 - 6, y1 - 6], fill=lab + (255,), outline=fam["ink"], width=3)
    elif lay == "stripe":
        d.rectangle([x0, y0, x0 + (x1 - x0) // 4, y1], fill=lab + (255,))
    else:
        d.rectangle([x0, (y0 + y1) // 2, x1, y1], fill=lab + (255,))
    cx, cy, r = (x0 + x1) // 2, y0 + (y1 - y0) * 2 // 3, min(x1 - x0, y1 - y0) // 6
    ink = fam["ink"] + (255,)
    if fam["emblem"] == 0:
        pts = [(cx + r * np.cos(2 * np.pi * k / fam["sides"]), cy + r * np.sin(2 * np.pi * k / fam["sides"]))
               for k in range(fam["sides"])]
        d.polygon(pts, fill=ink)
    elif fam["emblem"] == 1:
        for k in range(min(3, r // 5)):
            d.ellipse([cx - r + 5 * k, cy - r + 5 * k, cx + r - 5 * k, cy + r - 5 * k], outline=ink, width=2)
    elif fam["emblem"] == 2:
        for k in range(-2, 3):
            d.line([(cx - r, cy + 5 * k), (cx + r, cy + 5 * k - r // 2)], fill=ink, width=2)
    else:
        d.chord([cx - r, cy - r, cx + r, cy + r], 180, 360, fill=ink)
    big = font(fam["font"], max(12, (x1 - x0) // 6))
    d.text(((x0 + x1) // 2, y0 + (y1 - y0) // 6), fam["name"], fill=ink, font=big, anchor="mm")
    d.text(((x0 + x1) // 2, y0 + (y1 - y0) * 2 // 5), var["word"], fill=ink,
           font=font(fam["font"], max(9, (x1 - x0) // 10)), anchor="mm")
    d.text((x1 - 4, y1 - 4), var["weight"], fill=ink, font=font("LiberationSans-Italic", 10), anchor="rb")
    if var["chip"]:
        d.rectangle([x0 + 4, y1 - 18, x0 + 18, y1 - 4], fill=var["chip"] + (255,))
    arr = np.asarray(im).astype(np.float32)
    if fam["shape"] in ("jar", "tin", "tube"):
        xs = np.linspace(-1, 1, w)
        arr[..., :3] *= (0.55 + 0.45 * np.sqrt(np.clip(1 - xs ** 2, 0, 1)))[None, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def texture(rng):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.array(hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.9)), np.float32)
    kind = rng.randrange(3)
    if kind == 0:  # wood
        g = 0.8 + 0.2 * np.sin(yy / rng.uniform(3, 9) + 3 * np.sin(xx / 40))
    elif kind == 1:  # tiles
        s = rng.randint(24, 60)
        g = np.where((xx % s < 2) | (yy % s < 2), 0.6, 1.0)
    else:  # fabric
        g = 0.85 + 0.15 * np.random.default_rng(rng.randrange(1 << 30)).random((H, W))
    return base[None, None, :] * g[..., None]


def photo(fam, var, seed):
    rng = random.Random(seed)
    arr = texture(rng)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    # A neighbouring product cut by the frame's edge.
    d = ImageDraw.Draw(img)
    if rng.random() < 0.6:
        nx = rng.choice([-60, W - 40])
        d.rectangle([nx, rng.randint(20, 80), nx + 100, H], fill=hsv(rng.random(), 0.7, 0.7))
    prod = label(fam, var)
    scale = rng.uniform(0.4, 0.95) * H / prod.height
    prod = prod.resize((max(8, int(prod.width * scale)), max(8, int(prod.height * scale))), Image.LANCZOS)
    pw, ph = prod.size
    q = [rng.uniform(-0.1, 0.1) * pw for _ in range(8)]
    quad = (q[0], q[1], q[2], ph + q[3], pw + q[4], ph + q[5], pw + q[6], q[7])
    prod = prod.transform((pw, ph), Image.QUAD, quad, Image.BICUBIC)
    prod = prod.rotate(rng.uniform(-20, 20), Image.BICUBIC, expand=True)
    x = (W - prod.width) // 2 + rng.randint(-30, 30)
    y = (H - prod.height) // 2 + rng.randint(-15, 15)
    shadow = Image.new("RGBA", prod.size, (0, 0, 0, 0))
    shadow.putalpha(prod.getchannel("A").point(lambda a: a * 0.45))
    img.paste(shadow.filter(ImageFilter.GaussianBlur(6)), (x + 8, y + 6), shadow.filter(ImageFilter.GaussianBlur(6)))
    img.paste(prod, (x, y), prod)
    arr = np.asarray(img).astype(np.float32)
    # Glossy highlight: a soft diagonal band.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if rng.random() < 0.5:
        off = rng.uniform(0, W)
        band = np.exp(-((xx + 0.5 * yy - off) / rng.uniform(6, 18)) ** 2)
        arr += 90 * band[..., None]
    # Colour temperature, exposure and vignetting.
    arr *= np.array([rng.uniform(0.85, 1.15), 1.0, rng.uniform(0.85, 1.15)], np.float32)
    arr *= rng.uniform(0.65, 1.2)
    r2 = ((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2
    arr *= (1 - rng.uniform(0.2, 0.8) * r2)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        k = rng.choice([3, 5])
        img = img.filter(ImageFilter.Kernel((k, k), [1 if i // k == k // 2 else 0 for i in range(k * k)], k))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(40, 90))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def eval_set(out, known, new, unknown, ref, query, seed):
    """Known and new SKUs are enrolled alike (the model trained on neither); unknown products
    come from families none of whose variants is enrolled."""
    fams = families(400, seed)
    skus = [(f"S{fi:03d}{vi}", fam, var) for fi, (fam, vs) in enumerate(fams) for vi, var in enumerate(vs)]
    famof = {s: s[:4] for s, _, _ in skus}
    order = list(range(len(fams)))
    random.Random(seed + 1).shuffle(order)
    groups, fi = {"known": [], "new": [], "unknown": []}, 0
    for name, want in [("known", known), ("new", new), ("unknown", unknown)]:
        while len(groups[name]) < want:
            fam_skus = [s for s in skus if famof[s[0]] == f"S{order[fi]:03d}"]
            fi += 1
            groups[name] += fam_skus[: want - len(groups[name])]
    n = 0
    for name in ("known", "new"):
        for sku, fam, var in groups[name]:
            for sub, count, base in (("ref", ref, 0), ("query", query, 1000)):
                d = out / name / sub / sku
                d.mkdir(parents=True, exist_ok=True)
                for k in range(count):
                    photo(fam, var, f"{seed}:{sku}:{base + k}").save(d / f"{k}.jpg", quality=92)
                    n += 1
    (out / "unknown").mkdir(parents=True, exist_ok=True)
    for sku, fam, var in groups["unknown"]:
        for k in range(2):
            photo(fam, var, f"{seed}:{sku}:u{k}").save(out / "unknown" / f"{sku}-{k}.jpg", quality=92)
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval-set", type=Path, required=True)
    ap.add_argument("--known", type=int, default=100)
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--unknown", type=int, default=40)
    ap.add_argument("--ref", type=int, default=5)
    ap.add_argument("--query", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    n = eval_set(a.eval_set, a.known, a.new, a.unknown, a.ref, a.query, a.seed)
    print(f"{n} photos in {a.eval_set}")


if __name__ == "__main__":
    main()
