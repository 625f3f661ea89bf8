#!/usr/bin/env python3
"""Out-of-distribution photo source "counter": product photos written from a specification
of its own, sharing no code with the training generator (`vision_data.py`) nor with the
"shelf" source (`ood_shelf.py`).

Specification:
- the till's camera looks down on the checkout counter: a dark belt with grooves, or a
  speckled laminate, under cool fluorescent light with a glare spot;
- packaging seen from the front or top: flat cards with rounded corners, round lids, tall
  narrow packets and wide sachets; each carries an illustration (a cluster of fruit-like
  discs with a leaf), a wordmark in the DejaVu serif, mono or condensed faces, and, on about
  half the photos, an EAN-13 barcode (drawn by `python-barcode`) on the visible face;
- look-alike families: variants of a brand share everything but the illustration's colour
  and the flavour name, or a diagonal "LIGHT"/"XL"-style corner banner, or only the
  barcode and a line of small print;
- camera: square 480x480 frames, any rotation (top-down), the product sometimes cut by the
  frame edge, shot at a lower resolution and upscaled (soft focus), chroma noise, and gain
  flicker.

Usage: ood_counter.py --eval-set DIR [--known 100 --new 40 --unknown 40 --ref 5 --query 4]
       ood_counter.py --barcode-photo FILE   one photo of one product with its barcode in view
"""

import argparse
import json
import random
from pathlib import Path

import numpy as np
from barcode import EAN13
from barcode.writer import ImageWriter
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FACES = ["DejaVuSerif-Bold", "DejaVuSansMono-Bold", "DejaVuSansCondensed-Bold",
         "DejaVuSerif-Italic", "DejaVuSerifCondensed-Bold", "DejaVuSans-ExtraLight"]
FORMS = ["card", "lid", "packet", "sachet"]
FLAVOURS = ["Cherry", "Apricot", "Lime", "Plum", "Kiwi", "Peach", "Fig", "Melon", "Guava",
            "Quince", "Papaya", "Lychee"]
SYL = ["mar", "to", "ben", "ca", "dil", "ex", "fo", "gun", "hol", "is", "jak", "lem", "nor"]
SIDE = 480


def face(name, size):
    return ImageFont.truetype(str(FONT_DIR / f"{name}.ttf"), size)


def rgb(rng, lo=40, hi=230):
    return tuple(rng.randint(lo, hi) for _ in range(3))


def ean(rng):
    digits = "".join(str(rng.randrange(10)) for _ in range(12))
    return EAN13(digits).get_fullcode()


def catalog(n, seed):
    """`n` families of 2-4 variants: (sku, product dict) pairs."""
    rng = random.Random(seed)
    out = []
    for f in range(n):
        fam = dict(brand="".join(rng.choice(SYL) for _ in range(rng.randint(2, 3))).capitalize(),
                   form=rng.choice(FORMS), bg=rgb(rng), ink=rgb(rng, 0, 120), face=rng.choice(FACES),
                   diff=rng.choice(["fruit", "banner", "print"]), discs=rng.randint(2, 5))
        names = rng.sample(FLAVOURS, 4)
        for v in range(rng.randint(2, 4)):
            p = dict(fam, fruit=rgb(rng) if fam["diff"] == "fruit" else None, flavour=names[0],
                     banner=None, note=f"net {rng.randint(1, 9)}{rng.choice(['00 g', '50 ml', ' pcs'])}",
                     ean=ean(rng))
            if fam["diff"] == "fruit":
                p["flavour"] = names[v]
            elif fam["diff"] == "banner":
                p["banner"] = ["", "LIGHT", "XL", "KIDS"][v]
                p["fruit"] = None
            out.append((f"C{f:03d}{v}", p))
    for _, p in out:
        if p["fruit"] is None:
            p["fruit"] = random.Random(p["brand"]).choice([(200, 30, 40), (240, 160, 20), (90, 160, 40)])
    return out


def barcode_image(code):
    return EAN13(code[:12], writer=ImageWriter()).render(
        {"module_width": 0.25, "module_height": 7.0, "font_size": 5, "text_distance": 2.5,
         "quiet_zone": 2.0, "dpi": 600}).convert("RGB")


def face_image(p, with_code):
    w, h = {"card": (150, 190), "lid": (180, 180), "packet": (110, 210), "sachet": (210, 140)}[p["form"]]
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if p["form"] == "lid":
        d.ellipse([0, 0, w - 1, h - 1], fill=p["bg"] + (255,), outline=(180, 180, 180, 255), width=5)
    else:
        d.rounded_rectangle([0, 0, w - 1, h - 1], 14, fill=p["bg"] + (255,))
    rng = random.Random(p["brand"])
    cx, cy = w // 2, int(h * 0.45)
    for k in range(p["discs"]):
        ox, oy = rng.randint(-22, 22), rng.randint(-14, 14)
        d.ellipse([cx + ox - 16, cy + oy - 16, cx + ox + 16, cy + oy + 16], fill=p["fruit"] + (255,),
                  outline=(30, 30, 30, 255))
    d.polygon([(cx, cy - 30), (cx + 22, cy - 44), (cx + 6, cy - 24)], fill=(40, 130, 50, 255))
    d.text((cx, int(h * 0.15)), p["brand"], fill=p["ink"] + (255,), font=face(p["face"], max(14, w // 7)),
           anchor="mm")
    d.text((cx, int(h * 0.68)), p["flavour"], fill=p["ink"] + (255,), font=face(p["face"], 14), anchor="mm")
    d.text((cx, int(h * 0.78)), p["note"], fill=p["ink"] + (255,), font=face("DejaVuSansMono-Bold", 9),
           anchor="mm")
    if p["banner"]:
        d.polygon([(w - 60, 0), (w - 30, 0), (w - 1, 30), (w - 1, 60)], fill=(250, 250, 250, 255))
        d.text((w - 28, 24), p["banner"], fill=(200, 0, 0, 255), font=face("DejaVuSans-Bold", 10), anchor="mm")
    if with_code:
        # The printed barcode is sharp: the face goes to three times the size first, so that
        # the bars are resampled once, by the camera, not twice.
        im = im.resize((w * 3, h * 3), Image.BICUBIC)
        w, h = im.size
        bc = barcode_image(p["ean"])
        bc = bc.resize((int(w * 0.8), int(w * 0.8 * bc.height / bc.width)), Image.LANCZOS)
        if p["form"] == "lid" or bc.height > h * 0.4:
            bc = bc.resize((int(bc.width * 0.8), int(bc.height * 0.8)), Image.LANCZOS)
        canvas = Image.new("RGBA", (w, h + bc.height + 6), (0, 0, 0, 0))
        canvas.paste(im, (0, 0), im)
        ImageDraw.Draw(canvas).rectangle([0, h - 4, w - 1, h + bc.height + 5], fill=(255, 255, 255, 255))
        canvas.paste(bc, ((w - bc.width) // 2, h + 2))
        im = canvas
    return im


def counter(rng):
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    if rng.random() < 0.5:
        g = 45 + 12 * (np.sin(yy / rng.uniform(2, 4)) > 0.7)
        arr = np.repeat(g[..., None], 3, 2)
    else:
        base = np.array(rgb(rng, 120, 230), np.float32)
        arr = base + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 18, (SIDE, SIDE, 1))
    return arr


def photo(p, seed, with_code=None, fixed=None):
    """A photo of `p`; `fixed` (degrees) puts it centred and large, turned by that much."""
    rng = random.Random(seed)
    if with_code is None:
        with_code = rng.random() < 0.5
    arr = counter(rng)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    prod = face_image(p, with_code)
    s = (0.85 if fixed is not None else rng.uniform(0.55, 1.05)) * SIDE / max(prod.size)
    prod = prod.resize((int(prod.width * s), int(prod.height * s)), Image.BICUBIC)
    prod = prod.rotate(fixed if fixed is not None else rng.uniform(0, 360), Image.BICUBIC, expand=True)
    x = (SIDE - prod.width) // 2 + (0 if fixed is not None else rng.randint(-40, 40))
    y = (SIDE - prod.height) // 2 + (0 if fixed is not None else rng.randint(-40, 40))
    img.paste(prod, (x, y), prod)
    lo = rng.randint(SIDE * 5 // 8, SIDE) if fixed is None else SIDE * 7 // 8
    img = img.resize((lo, lo), Image.BILINEAR).resize((SIDE, SIDE), Image.BICUBIC)
    arr = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    gx, gy = rng.uniform(0, SIDE), rng.uniform(0, SIDE)
    arr += rng.uniform(30, 110) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * rng.uniform(15, 40) ** 2))[..., None]
    arr *= np.array([0.92, 1.0, rng.uniform(1.0, 1.12)], np.float32) * rng.uniform(0.75, 1.15)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    arr += nrng.normal(0, rng.uniform(2, 7), (SIDE, SIDE, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def eval_set(out, known, new, unknown, ref, query, seed):
    items = catalog(300, seed)
    fams = {}
    for sku, p in items:
        fams.setdefault(sku[:4], []).append((sku, p))
    order = list(fams)
    random.Random(seed + 1).shuffle(order)
    groups, fi = {"known": [], "new": [], "unknown": []}, 0
    for name, want in [("known", known), ("new", new), ("unknown", unknown)]:
        while len(groups[name]) < want:
            groups[name] += fams[order[fi]][: want - len(groups[name])]
            fi += 1
    n, codes, shown = 0, {}, []
    for name in ("known", "new"):
        for sku, p in groups[name]:
            codes[sku] = p["ean"]
            for sub, count, base in (("ref", ref, 0), ("query", query, 1000)):
                d = out / name / sub / sku
                d.mkdir(parents=True, exist_ok=True)
                for k in range(count):
                    s = f"{seed}:{sku}:{base + k}"
                    photo(p, s).save(d / f"{k}.jpg", quality=90)
                    n += 1
                    if sub == "query" and random.Random(s).random() < 0.5:  # photo()'s first draw
                        shown.append(f"{name}/{sub}/{sku}/{k}.jpg")
    (out / "unknown").mkdir(parents=True, exist_ok=True)
    for sku, p in groups["unknown"]:
        for k in range(2):
            photo(p, f"{seed}:{sku}:u{k}").save(out / "unknown" / f"{sku}-{k}.jpg", quality=90)
            n += 1
    # The catalog's barcodes: `tillmesh vision eval` answers from them before the model.
    (out / "barcodes.json").write_text(json.dumps(
        {"codes": {c: s for s, c in sorted(codes.items())}, "shown": shown}, indent=1) + "\n")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval-set", type=Path)
    ap.add_argument("--barcode-photo", type=Path)
    ap.add_argument("--known", type=int, default=100)
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--unknown", type=int, default=40)
    ap.add_argument("--ref", type=int, default=5)
    ap.add_argument("--query", type=int, default=4)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--ean", help="the barcode's EAN-13 (with --barcode-photo)")
    ap.add_argument("--turn", type=float, default=0.0, help="degrees (with --barcode-photo)")
    a = ap.parse_args()
    if a.eval_set:
        n = eval_set(a.eval_set, a.known, a.new, a.unknown, a.ref, a.query, a.seed)
        print(f"{n} photos in {a.eval_set}")
    if a.barcode_photo:
        global SIDE
        SIDE = 640  # a camera frame of its own size, the package held close
        sku, p = catalog(1, a.seed)[0]
        if a.ean:
            p["ean"] = a.ean
        photo(p, f"{a.seed}:barcode", with_code=True, fixed=a.turn).save(a.barcode_photo, quality=88)
        print(f"{a.barcode_photo}: {sku}, EAN-13 {p['ean']}")
    if not (a.eval_set or a.barcode_photo):
        ap.error("give --eval-set DIR or --barcode-photo FILE")


if __name__ == "__main__":
    main()
