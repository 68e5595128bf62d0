"""The committed toy CLIP: it loads as `--model toy-clip`, and its card's zero-shot numbers hold."""
import json

import pytest

from bench.model.factory import ASSET_DIR, load_model
from bench.train.pretrain_toy import zeroshot_card

CARD = ASSET_DIR / "toy-clip.json"


def test_checkpoint_is_small_and_loads_by_default():
    assert (ASSET_DIR / "toy-clip.pt").stat().st_size < 20 * 2 ** 20
    m = load_model("toy-clip", "default")
    assert m.pretrained.endswith("toy-clip.pt")


@pytest.mark.slow  # zero-shot over every toy test set
def test_zero_shot_results_match_the_card_and_meet_the_thresholds(bench_home):
    card = json.loads(CARD.read_text())
    measured = zeroshot_card("toy-clip", ASSET_DIR / "toy-clip.pt")
    for task, metrics in card["zeroshot"].items():
        for key, value in metrics.items():
            assert measured[task][key] == pytest.approx(value, abs=0.005), (task, key)
    shift = measured["toy-shift"]
    assert shift["id/id_test/top1"] >= 0.60
    for ood in ("v2", "sketch", "rendition", "adversarial"):
        assert shift[f"ood/{ood}/top1"] >= 0.35, ood
    assert measured["toy-cameras"]["id/id_test/macro_f1"] >= 0.30
