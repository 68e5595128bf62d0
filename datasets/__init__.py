"""Dataset registry: name -> DatasetSource class, imported lazily (listing names never imports torch)."""
from bench.registry import Registry

DATASETS: Registry = Registry("dataset")

DATASETS.register("folder", "bench.datasets.folder:FolderDataset",
                  about="ImageFolder-style tree: <root>/<split>/<class>/*.jpg (+ classnames.txt, templates.txt)")
DATASETS.register("toy-shift", "bench.datasets.toy.source:ToyShift",
                  about="toy world, ImageNet analogue: photos with spurious colour/background cues -> v2, sketch, rendition, adversarial")
DATASETS.register("toy-cameras", "bench.datasets.toy.source:ToyCameras",
                  about="toy world, iWildCam analogue: camera-trap domains, long tail, unseen OOD cameras, macro-F1")
