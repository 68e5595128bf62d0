"""The toy renderer and caption grammar: determinism, coverage, and prompts the toy model can read."""
from dataclasses import replace

import numpy as np
import pytest

from bench.datasets.toy import captions, worlds
from bench.datasets.toy.render import Scene, render, sample_scene
from bench.datasets.toy.source import TEMPLATES
from bench.datasets.toy.vocab import BACKGROUNDS, CLASS_KEYS, CLASSES, CLASSNAMES, COLOURS, STYLES
from bench.errors import BenchError


def _hard(style, seed=0):
    return sample_scene(np.random.default_rng(seed), style=style, clutter=(2, 4), occlusion=(0.2, 0.3),
                        palette_shift=0.05, brightness=0.9, tint=(1.0, 0.95, 0.9))


@pytest.mark.parametrize("style", list(STYLES))
def test_same_scene_gives_identical_bytes(style):
    scene = _hard(style)
    assert render(scene).tobytes() == render(scene).tobytes()
    assert _hard(style) == scene  # sampling is deterministic too
    assert render(_hard(style)).tobytes() == render(scene).tobytes()


@pytest.mark.parametrize("style", list(STYLES))
def test_different_seeds_give_different_images(style):
    scene = _hard(style)
    assert render(replace(scene, seed=scene.seed + 1)).tobytes() != render(scene).tobytes()
    assert render(replace(scene, background_seed=12345)).tobytes() != render(scene).tobytes()


def test_background_seed_fixes_the_background():
    # two different objects seen by one "camera": the background away from the object is identical
    a = Scene("star", "red", "striped", "cartoon", scale=0.15, seed=1, background_seed=7)
    b = Scene("heart", "blue", "striped", "cartoon", scale=0.15, seed=2, background_seed=7, rotation=10)
    ia, ib = np.asarray(render(a)), np.asarray(render(b))
    assert (ia[:12, :12] == ib[:12, :12]).all()
    assert (ia != ib).any()


@pytest.mark.parametrize("size", [32, 48, 64])
def test_render_returns_rgb_of_requested_size(size):
    img = render(Scene("house", "green", "dotted", "painting"), size)
    assert img.mode == "RGB" and img.size == (size, size)


def test_every_shape_is_drawn_in_every_style():
    for style in STYLES:
        for shape in CLASS_KEYS:
            img = np.asarray(render(Scene(shape, "red", "plain", style), 32), np.float32)
            assert img.std() > 8, (shape, style)  # something besides the background


def test_pretrain_corpus_covers_the_vocabulary():
    corpus = worlds.pretrain_corpus(800, seed=0)
    assert len(corpus) == 800 and corpus == worlds.pretrain_corpus(800, seed=0)
    scenes = [s for s, _ in corpus]
    assert {s.shape for s in scenes} == set(CLASSES)
    assert {s.colour for s in scenes} == set(COLOURS)
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    assert {s.style for s in scenes} == set(STYLES)
    assert {captions.caption_form(c) for _, c in corpus} == set(captions.CAPTION_FORMS)
    for s, c in corpus:  # the object is always named; sketches never name a colour
        assert any(w in c for w in CLASSES[s.shape]), c
        if s.style == "sketch":
            assert "colour" not in captions.caption_form(c), c


def test_each_caption_form_produces_its_form():
    rng = np.random.default_rng(0)
    scene = Scene("lightning", "orange", "wavy", "cartoon")
    for form in captions.CAPTION_FORMS:
        text = captions.caption(scene, rng, form=form)
        assert captions.caption_form(text) == form, text
        assert text in captions.caption_variants(scene)


def test_templates_are_sentences_of_the_grammar():
    for key, name in zip(CLASS_KEYS, CLASSNAMES):
        variants = set().union(*(captions.caption_variants(Scene(key, "red", "plain", st)) for st in STYLES))
        for t in TEMPLATES:
            assert t.format(name) in variants, t.format(name)


def test_sample_scene_constraints():
    rng = np.random.default_rng(0)
    s = [sample_scene(rng, shape="star", colour={"red": 9, "blue": 1}, style=["sketch", "cartoon"],
                      clutter=(1, 2), scale=[(0.1, 0.11), (0.5, 0.51)]) for _ in range(200)]
    assert {x.shape for x in s} == {"star"} and {x.style for x in s} == {"sketch", "cartoon"}
    assert 0.8 < np.mean([x.colour == "red" for x in s]) < 0.97
    assert {x.clutter for x in s} == {1, 2}
    assert all(0.1 <= x.scale <= 0.11 or 0.5 <= x.scale <= 0.51 for x in s)
    with pytest.raises(BenchError, match="shape"):
        sample_scene(rng, shape="sqare")
    with pytest.raises(BenchError, match="constraint"):
        sample_scene(rng, colur="red")
    with pytest.raises(BenchError, match="style"):
        render(Scene("star", "red", "plain", "oil"))
