from bench.train.pretrain_toy import Recipe, pretrain


def test_short_pretraining_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path, bench_home):
    recipe = Recipe(arch="bench-tiny", corpus_size=384, steps=20, batch_size=64, lr=2e-3, warmup=2)
    card = pretrain(recipe, tmp_path / "tiny.pt", log=lambda s: None, evaluate=False)
    assert card["final_loss"] < card["first_loss"]
    assert (tmp_path / "tiny.json").is_file()
    from bench.model.factory import load_model

    load_model("bench-tiny", str(tmp_path / "tiny.pt"))


def test_sigmoid_objective_pretraining_trains_the_bias_too(tmp_path, bench_home):
    import torch

    recipe = Recipe(arch="bench-tiny-sigmoid", corpus_size=384, steps=20, batch_size=64, lr=2e-3, warmup=2,
                    objective="siglip")
    card = pretrain(recipe, tmp_path / "tiny.pt", log=lambda s: None, evaluate=False)
    assert card["final_loss"] < card["first_loss"]
    state = torch.load(tmp_path / "tiny.pt", weights_only=False)["state_dict"]
    assert state["logit_bias"].item() != -10.0
