"""The embedded toy world: a procedural captioned-image renderer and the toy-shift / toy-cameras datasets.

Modules: vocab (words), shapes (outlines), styles (textures, painters), render (Scene, render,
sample_scene), captions (grammar), worlds (split generators), source (DatasetSource classes).
Names are not re-exported here, so `bench.datasets.toy.render` always means the module.
Importing this package or its renderer does not import torch; `source` does.
"""
