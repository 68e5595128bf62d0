"""Zero-shot CLIP: the head is built from class prompts; nothing trains."""
from bench.model.heads import zeroshot_head
from bench.methods.base import Method, MethodContext


class ZeroShot(Method):
    name = "zeroshot"
    label = "Zeroshot"
    trains = False
    frozen_image_tower = True

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        self.head = zeroshot_head(self.model, ctx.prompt_tokens).to(ctx.device)
