#!/usr/bin/env python3
"""Heavier domain randomisation for training: many more brand families than
`vision_data.py`, in more packaging shapes and label layouts, set in every font on the
machine, whose variants differ in whatever a real brand varies (flavour word only, a colour
chip, the label's tint, an illustration's colour, a corner banner, accent and band), and
photographed in far wider conditions (any rotation, 35-100% of the frame, off-centre and cut
by the frame edge, textured surfaces, neighbouring products, glare, colour temperature,
vignetting, low resolution, motion blur, JPEG).

Nothing here is used to evaluate: the out-of-distribution sources (`ood_shelf.py`,
`ood_counter.py`) share no code with this file or with `vision_data.py`.

`wild_catalog(n)` lists products; `render(product, seed)` draws one 224x224 photo.
"""

import glob
import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 224
FONTS = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
SHAPES = ["box", "can", "bottle", "bag", "jar", "round", "tray", "tall", "sachet", "tube"]
DIFFS = ["word", "chip", "tint", "art", "banner", "accent", "word+chip"]
WORDS = ["Original", "Lemon", "Berry", "Mint", "Cocoa", "Spicy", "Light", "Honey", "Mango",
         "Salted", "Vanilla", "Grape", "Decaf", "Strong", "Mild", "Bio", "Zero", "Family",
         "Gold", "Fresh", "Dark", "Plain", "Sesame", "Pepper", "Orange", "Apple", "Cherry"]
LETTERS = "bcdfghjklmnprstvwxz"
VOWELS = "aeiou"


@dataclass(frozen=True)
class Wild:
    sku: str
    shape: str
    aspect: float
    body: tuple
    panel: tuple
    ink: tuple
    brand: str
    font: str
    layout: int
    art: int
    art_colour: tuple
    word: str
    chip: tuple
    tint: float
    banner: str
    accent: tuple
    note: str


def _rgb(rng, lo=20, hi=235):
    return tuple(rng.randint(lo, hi) for _ in range(3))


def _name(rng):
    return "".join(rng.choice(LETTERS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 4))).title()


def wild_catalog(families, seed=101):
    """`families` brand families of 3-5 look-alike variants each."""
    rng = random.Random(seed)
    out = []
    for f in range(families):
        fam = dict(shape=rng.choice(SHAPES), aspect=rng.uniform(0.45, 1.6), body=_rgb(rng),
                   panel=_rgb(rng, 120, 255), ink=_rgb(rng, 0, 140), brand=_name(rng),
                   font=rng.choice(FONTS), layout=rng.randrange(6), art=rng.randrange(6),
                   art_colour=_rgb(rng), word=rng.choice(WORDS), chip=None, tint=0.0, banner="",
                   accent=_rgb(rng), note=f"{rng.randint(1, 9)}{rng.choice(['00 g', '50 ml', ' kg', ' L'])}")
        diff = rng.choice(DIFFS)
        words = rng.sample(WORDS, 5)
        for v in range(rng.randint(3, 5)):
            p = dict(fam)
            if "word" in diff:
                p["word"] = words[v]
            if "chip" in diff:
                p["chip"] = _rgb(rng)
            if diff == "tint":
                p["tint"] = v / 5
            if diff == "art":
                p["art_colour"] = _rgb(rng)
            if diff == "banner":
                p["banner"] = ["", "LIGHT", "XL", "NEW", "KIDS"][v]
            if diff == "accent":
                p["accent"] = _rgb(rng)
            out.append(Wild(sku=f"W{f:04d}{v}", **p))
    return out


def _font(p, size):
    try:
        return ImageFont.truetype(p, size)
    except OSError:
        return ImageFont.load_default()


def _front(p):
    h = 190
    w = int(max(60, min(220, h * p.aspect)))
    if p.shape in ("round",):
        w = h
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    body = p.body + (255,)
    if p.shape == "round":
        d.ellipse([0, 0, w - 1, h - 1], fill=body)
    elif p.shape == "bottle":
        d.polygon([(w * .38, 0), (w * .62, 0), (w * .62, 28), (w - 1, 50), (w - 1, h - 1), (0, h - 1),
                   (0, 50), (w * .38, 28)], fill=body)
    elif p.shape == "bag":
        d.polygon([(6, 0), (w - 7, 0), (w - 1, h - 1), (0, h - 1)], fill=body)
    elif p.shape == "tube":
        d.polygon([(0, 0), (w - 1, 0), (w * .8, h - 18), (w * .2, h - 18)], fill=body)
        d.rectangle([w * .4, h - 20, w * .6, h - 1], fill=(235, 235, 235, 255))
    elif p.shape == "jar":
        d.rectangle([8, 0, w - 9, 18], fill=(70, 70, 70, 255))
        d.rounded_rectangle([0, 16, w - 1, h - 1], 16, fill=body)
    else:
        d.rounded_rectangle([0, 0, w - 1, h - 1], 4 if p.shape in ("box", "tall") else 14, fill=body)
    tint = tuple(int(c * (1 - p.tint * .4) + b * p.tint * .4) for c, b in zip(p.panel, p.body))
    lay = p.layout
    if lay == 0:
        d.rectangle([0, h * .3, w, h * .62], fill=tint + (255,))
    elif lay == 1:
        d.polygon([(0, h * .75), (0, h * .95), (w, h * .35), (w, h * .15)], fill=tint + (255,))
    elif lay == 2:
        d.rectangle([w * .1, h * .2, w * .9, h * .85], fill=tint + (255,), outline=p.ink + (255,), width=2)
    elif lay == 3:
        d.rectangle([0, 0, w * .25, h], fill=tint + (255,))
    elif lay == 4:
        d.ellipse([w * .1, h * .3, w * .9, h * .8], fill=tint + (255,))
    d.rectangle([0, h * .66, w, h * .72], fill=p.accent + (255,))
    cx, cy, r = w // 2, int(h * .5), max(8, min(w, h) // 7)
    ac = p.art_colour + (255,)
    if p.art == 0:
        for k in range(3):
            d.ellipse([cx - r + k * r // 2 - r // 2, cy - r // 2, cx + k * r // 2, cy + r], fill=ac, outline=(20, 20, 20, 255))
    elif p.art == 1:
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=ac)
    elif p.art == 2:
        d.rectangle([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=ac)
    elif p.art == 3:
        d.pieslice([cx - r, cy - r, cx + r, cy + r], 30, 330, fill=ac)
    elif p.art == 4:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ac, width=max(2, r // 3))
    else:
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=ac)
    d.text((w // 2, int(h * .16)), p.brand, fill=p.ink + (255,), font=_font(p.font, max(11, w // 6)), anchor="mm")
    d.text((w // 2, int(h * .8)), p.word, fill=p.ink + (255,), font=_font(p.font, max(10, w // 9)), anchor="mm")
    d.text((w - 5, h - 5), p.note, fill=p.ink + (255,), font=_font(p.font, 10), anchor="rb")
    if p.chip:
        d.rectangle([6, h - 24, 22, h - 8], fill=p.chip + (255,))
    if p.banner:
        d.polygon([(w - 50, 0), (w - 25, 0), (w - 1, 25), (w - 1, 50)], fill=(250, 250, 250, 255))
        d.text((w - 22, 20), p.banner, fill=(210, 0, 0, 255), font=_font(FONTS[0], 9), anchor="mm")
    if p.shape in ("can", "jar", "round", "tube", "bottle"):
        a = np.asarray(im).astype(np.float32)
        xs = np.linspace(-1, 1, w)
        a[..., :3] *= (.6 + .4 * np.sqrt(np.clip(1 - xs ** 2, 0, 1)))[None, :, None]
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return im


def _surface(rng):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = np.array(_rgb(rng), np.float32)
    k = rng.randrange(5)
    if k == 0:
        g = .8 + .2 * np.sin(yy / rng.uniform(2, 9) + rng.uniform(0, 4) * np.sin(xx / 37))
    elif k == 1:
        s = rng.randint(16, 60)
        g = np.where((xx % s < 2) | (yy % s < 2), .6, 1.)
    elif k == 2:
        g = .8 + .2 * np.random.default_rng(rng.randrange(1 << 30)).random((SIZE, SIZE))
    elif k == 3:
        g = np.ones((SIZE, SIZE), np.float32)
    else:
        g = .7 + .3 * (np.sin(xx / rng.uniform(3, 12)) > 0)
    img = Image.fromarray(np.clip(base * g[..., None], 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 8)):
        x, y, s = rng.randrange(-60, SIZE), rng.randrange(-60, SIZE), rng.randint(20, 110)
        (d.rectangle if rng.random() < .5 else d.ellipse)([x, y, x + s, y + rng.randint(15, 110)], fill=_rgb(rng))
    return img


def _warp(im, rng, amount):
    w, h = im.size
    q = [rng.uniform(-amount, amount) * s for s in (w, h) * 4]
    quad = (q[0], q[1], q[2], h + q[3], w + q[4], h + q[5], w + q[6], q[7])
    return im.transform((w, h), Image.QUAD, quad, Image.BICUBIC)


def render(p, seed):
    """One photo of wild product `p`, deterministic in (p, seed)."""
    rng = random.Random(f"{p.sku}/{seed}")
    img = _surface(rng)
    prod = _warp(_front(p), rng, .1)
    frac = rng.uniform(.35, 1.0)
    s = frac * SIZE / max(prod.size)
    prod = prod.resize((max(8, int(prod.width * s)), max(8, int(prod.height * s))), Image.BICUBIC)
    prod = prod.rotate(rng.uniform(-180, 180) if rng.random() < .4 else rng.uniform(-25, 25),
                       Image.BICUBIC, expand=True)
    x = (SIZE - prod.width) // 2 + int(rng.uniform(-.2, .2) * SIZE)
    y = (SIZE - prod.height) // 2 + int(rng.uniform(-.2, .2) * SIZE)
    if rng.random() < .5:
        sh = Image.new("RGBA", prod.size, (0, 0, 0, 0))
        sh.putalpha(prod.getchannel("A").point(lambda a: a * .4))
        sh = sh.filter(ImageFilter.GaussianBlur(5))
        img.paste(sh, (x + rng.randint(-8, 8), y + rng.randint(2, 10)), sh)
    img.paste(prod, (x, y), prod)
    d = ImageDraw.Draw(img)
    if rng.random() < .3:
        skin = rng.choice([(224, 172, 138), (198, 134, 96), (141, 85, 36), (255, 205, 170)])
        hx, hy = x + rng.choice([0, prod.width]), y + prod.height // 2 + rng.randint(-30, 30)
        d.ellipse([hx - 34, hy - 26, hx + 34, hy + 26], fill=skin)
    a = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE - .5
    ang = rng.uniform(0, 2 * math.pi)
    a *= (1 + rng.uniform(0, .5) * (np.cos(ang) * xx + np.sin(ang) * yy))[..., None]
    if rng.random() < .5:
        gx, gy = rng.uniform(-.5, .5), rng.uniform(-.5, .5)
        a += rng.uniform(30, 110) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * rng.uniform(.05, .18) ** 2))[..., None]
    a *= np.array([rng.uniform(.85, 1.15), 1, rng.uniform(.85, 1.15)], np.float32) * rng.uniform(.65, 1.2)
    a *= (1 - rng.uniform(0, .7) * (xx ** 2 + yy ** 2))[..., None]
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < .4:
        lo = rng.randint(110, 200)
        img = img.resize((lo, lo), Image.BILINEAR).resize((SIZE, SIZE), Image.BILINEAR)
    if rng.random() < .3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(.3, 1.5)))
    a = np.asarray(img).astype(np.float32)
    a += np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(1, 8), a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < .6:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(35, 90))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img
