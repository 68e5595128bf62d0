"""The MLflow model `bench run --log-model` stores: an open_clip classifier (MLflow "models from code").

This file is copied into each logged model and runs without bench installed: it needs torch, numpy,
open_clip and mlflow only. Its artifacts:

    weights        selected.pt: {"state_dict": open_clip CLIP weights, "bench_head": linear head or None,
                   "arch", "built": the model as built (config, activation, preprocessing), ...}
    meta           meta.json: {"config", "quick_gelu", "classnames", "templates", ...}
    model_config   <config>.json: the open_clip model config, for architectures open_clip does not ship

`predict(images)` takes preprocessed images, float32 [N, 3, H, W] (the model's `preprocess`), and returns
the logits bench evaluates with, float32 [N, classes]: the job's learned linear head on L2-normalised image
features, or, where the method has none (FLYP, zero-shot), the zero-shot head rebuilt from the text tower
(templates averaged and normalised, scaled by the learned temperature, plus SigLIP's logit bias).
Load it with `mlflow.pyfunc.load_model(uri)`; `.unwrap_python_model().model` is the open_clip model and
`.preprocess` its evaluation transform.
"""
from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

PROMPT_CHUNK = 1024


class OpenClipClassifier(PythonModel):
    # No type hints on predict: the logged tensor signature validates inputs (and MLflow would warn about it).
    _skip_type_hint_validation = True

    def load_context(self, context):
        import json

        import open_clip
        import torch

        arts = context.artifacts
        with open(arts["meta"]) as f:
            self.meta = meta = json.load(f)
        if arts.get("model_config"):
            open_clip.add_model_config(arts["model_config"])
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            meta["config"], pretrained=None, force_quick_gelu=meta["quick_gelu"], image_mean=meta.get("mean"),
            image_std=meta.get("std"), image_interpolation=meta.get("interpolation"),
            image_resize_mode=meta.get("resize_mode"))
        saved = torch.load(arts["weights"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(saved["state_dict"])
        self.model.eval()
        head = saved.get("bench_head")
        with torch.no_grad():
            if head is not None:
                self.weight, self.bias = head["weight"].float(), head["bias"].float()
            else:
                self.weight, self.bias = self._zeroshot(open_clip.get_tokenizer(meta["config"]), meta)

    def _zeroshot(self, tokenizer, meta):
        import torch
        import torch.nn.functional as F

        classnames, templates = meta["classnames"], meta["templates"]
        tokens = tokenizer([t.format(c) for c in classnames for t in templates])
        emb = torch.cat([self.model.encode_text(tokens[i:i + PROMPT_CHUNK], normalize=True).float()
                         for i in range(0, tokens.shape[0], PROMPT_CHUNK)])
        emb = F.normalize(emb.view(len(classnames), len(templates), -1).mean(dim=1), dim=-1)
        weight = emb * self.model.logit_scale.exp().float()
        logit_bias = getattr(self.model, "logit_bias", None)
        bias = (torch.zeros(weight.shape[0]) if logit_bias is None
                else logit_bias.detach().float().reshape(-1).expand(weight.shape[0]).clone())
        return weight, bias

    def predict(self, context, model_input, params=None):
        import numpy as np
        import torch
        import torch.nn.functional as F

        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            features = F.normalize(self.model.encode_image(images).float(), dim=-1)
            return (features @ self.weight.T + self.bias).numpy()


mlflow.models.set_model(OpenClipClassifier())
