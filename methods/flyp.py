"""FLYP (Goyal et al. 2022): finetune with CLIP's own contrastive loss between images and class prompts.

Each training image of class y is paired with `template(classname_y)`, the template drawn uniformly at
random per sample per step (the engine seeds the global RNG per epoch, so draws are reproducible and
resumable). Both towers and the temperature train; the head is rebuilt from the text tower for evaluation.
`logit_scale_max` defaults to 0: the temperature is never clamped, as in the released FLYP code (OpenAI's
ViT-B/16 starts at exactly 100, so open_clip's clamp at 100 would only let it fall). Set it (e.g. 100) to
clamp to [0, ln(max)] after each step as open_clip's trainer does.
"""
from __future__ import annotations

import math

import torch

from bench.errors import BenchError
from bench.runtime.distributed import current
from bench.model.losses import clip_loss, gather_batch, pretraining_objective, siglip_loss
from bench.methods.base import Method, MethodContext, set_requires_grad


class FLYP(Method):
    name = "flyp"
    label = "FLYP"
    wiseft = True
    # loss: auto (the model's own pretraining objective), clip (softmax InfoNCE) or siglip (pairwise sigmoid).
    hparams = {"grad_clip": 0.0, "mask_same_class": False, "logit_scale_max": 0.0, "loss": "auto",
               "same_class_positive": False}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        set_requires_grad(self.model, True)
        self.head = None  # always rebuilt from the current text tower
        self.objective = resolve_objective(ctx.hparams.get("loss", "auto"), self.model)

    def tags(self) -> dict:
        matched = self.objective == pretraining_objective(self.model)
        return {"bench.objective": self.objective, "bench.objective_matched": matched}

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def sample_prompts(self, labels: torch.Tensor) -> torch.Tensor:
        """One random template per sample, drawn from the CPU RNG (the same draws on any device) and indexed
        on the labels' device: no device-to-host copy of the labels, so no sync per step."""
        tokens = self.device_tokens(labels.device)
        # In a multi-process job every rank draws the global batch's choices (the RNG is seeded alike on every
        # rank) and keeps those of its samples, which are every world-th of the global batch (the distributed
        # sampler's order): the same draw per sample as one process given the same RNG state.
        rank = current()
        choice = torch.randint(tokens.shape[1], (len(labels) * rank.world,))[rank.rank::rank.world]
        return tokens[labels, choice.to(labels.device, non_blocking=True)]

    def device_tokens(self, device) -> torch.Tensor:
        """Every class x template prompt, copied to `device` once."""
        cached = getattr(self, "_tokens", None)
        if cached is None or cached.device != torch.device(device):
            self._tokens = self.ctx.prompt_tokens.to(device)
        return self._tokens

    def training_step(self, images, labels) -> dict:
        image_features = self.model.encode_image(images, normalize=True)
        text_features = self.model.encode_text(self.sample_prompts(labels), normalize=True)
        loss = self.contrastive_loss(image_features, text_features, labels)
        return {"loss": loss, "logit_scale": self.model.logit_scale.exp().detach()}

    def contrastive_loss(self, image_features, text_features, labels) -> torch.Tensor:
        """The pretraining objective over the global batch: in a multi-process job every rank's features are
        gathered first (with gradients), so the logits are global x global, exactly as in one process."""
        image_features, text_features, labels = gather_batch(image_features, text_features, labels)
        scale = self.model.logit_scale.exp()
        hp = self.ctx.hparams
        if self.objective == "siglip":
            return siglip_loss(image_features, text_features, scale, self.model.logit_bias, labels,
                               hp.get("same_class_positive", False))
        return clip_loss(image_features, text_features, scale, labels, hp["mask_same_class"])

    def backward_step(self, images, labels, micro_batch: int, backward, autocast) -> torch.Tensor:
        """With `micro_batch`, gradient caching (Gao et al. 2021, GradCache): embed the batch chunk by chunk
        without a graph, take the whole-batch loss and its gradient with respect to the features, then embed
        each chunk again with a graph and backpropagate those feature gradients. Same loss and gradients as
        the whole batch at once, with activation memory of one chunk. Prompts are drawn once for the batch.
        Each chunk's second pass replays the RNG state of its first (GradCache's RandContext), so dropout,
        patch dropout and drop-path draw the same masks in both; models with BatchNorm are refused upstream
        (bench.train.engine.check_micro_batch)."""
        n = len(labels)
        if not micro_batch or micro_batch >= n:
            return super().backward_step(images, labels, micro_batch, backward, autocast)
        prompts = self.sample_prompts(labels)
        chunks = [slice(s, s + micro_batch) for s in range(0, n, micro_batch)]
        image_rng, text_rng = [], []
        with torch.no_grad(), autocast():
            image = torch.cat([_embed(self.model.encode_image, images[c], image_rng) for c in chunks])
            text = torch.cat([_embed(self.model.encode_text, prompts[c], text_rng) for c in chunks])
        image, text = image.requires_grad_(), text.requires_grad_()
        with autocast():
            loss = self.contrastive_loss(image, text, labels).float()
        backward(loss)  # gradients of the features (scaled like the loss under fp16) and of the temperature
        for c, image_state, text_state in zip(chunks, image_rng, text_rng):
            with autocast():
                with image_state:
                    image_c = self.model.encode_image(images[c], normalize=True)
                with text_state:
                    text_c = self.model.encode_text(prompts[c], normalize=True)
            surrogate = (image_c.float() * image.grad[c].float()).sum() + (text_c.float() * text.grad[c].float()).sum()
            surrogate.backward()  # not through `backward`: the cached gradients already carry the scale
        return loss.detach()

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        clamp_logit_scale(self.model, self.ctx.hparams["logit_scale_max"])


class RandContext:
    """The CPU and CUDA RNG states at creation, replayed inside `with` (GradCache's RandContext); on exit the
    states are those from before the `with`, so the replay leaves the stream where the first pass left it."""

    def __init__(self, *tensors: torch.Tensor):
        from torch.utils.checkpoint import get_device_states

        self.cpu_state = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    def __enter__(self):
        from torch.utils.checkpoint import set_device_states

        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        set_device_states(self.devices, self.device_states)

    def __exit__(self, *exc):
        self._fork.__exit__(*exc)
        self._fork = None


def _embed(encode, x: torch.Tensor, states: list) -> torch.Tensor:
    """`encode(x)` normalised, after recording the RNG state it starts from."""
    states.append(RandContext(x))
    return encode(x, normalize=True)


def clamp_logit_scale(model, max_scale: float) -> None:
    if max_scale and max_scale > 0:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(max_scale))


OBJECTIVES = ("auto", "clip", "siglip")


def resolve_objective(name: str, model) -> str:
    """The loss FLYP continues: `auto` is the model's own pretraining objective (finetune like *it* was
    pretrained). The sigmoid loss needs the learned bias that only SigLIP-pretrained models carry."""
    if name not in OBJECTIVES:
        raise BenchError(f"flyp.loss must be one of {', '.join(OBJECTIVES)}, got {name!r}.")
    objective = pretraining_objective(model) if name == "auto" else name
    if objective == "siglip" and getattr(model, "logit_bias", None) is None:
        raise BenchError("flyp.loss=siglip needs a model with a learned logit bias (a SigLIP model, e.g. "
                         "--model ViT-B-16-SigLIP); this model was pretrained with CLIP's loss: use flyp.loss=clip "
                         "or auto.")
    return objective
