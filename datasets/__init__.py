"""Dataset registry: name -> DatasetSource class, imported lazily (listing names never imports torch)."""
from bench.registry import Registry

DATASETS: Registry = Registry("dataset")

DATASETS.register("folder", "bench.datasets.folder:FolderDataset",
                  about="ImageFolder-style tree: <root>/<split>/<class>/*.jpg (+ classnames.txt, templates.txt)")
DATASETS.register("toy-shift", "bench.datasets.toy.source:ToyShift",
                  about="toy world, ImageNet analogue: photos with spurious colour/background cues -> v2, sketch, rendition, adversarial")
DATASETS.register("toy-cameras", "bench.datasets.toy.source:ToyCameras",
                  about="toy world, iWildCam analogue: camera-trap domains, long tail, unseen OOD cameras, macro-F1")
# Real benchmarks (data under BENCH_DATA or --data-root; never downloaded). `bench data check` inspects them.
DATASETS.register("imagenet", "bench.datasets.imagenet:ImageNet",
                  about="ILSVRC-2012: train (minus a seeded 2% heldout_val), heldout_val, train_full, val")
DATASETS.register("imagenetv2", "bench.datasets.imagenet:ImageNetV2", about="ImageNetV2 matched-frequency: test")
DATASETS.register("imagenet-r", "bench.datasets.imagenet_subsets:ImageNetR",
                  about="ImageNet-R: test, scored on its 200 classes")
DATASETS.register("imagenet-a", "bench.datasets.imagenet_subsets:ImageNetA",
                  about="ImageNet-A: test, scored on its 200 classes")
DATASETS.register("imagenet-sketch", "bench.datasets.imagenet:ImageNetSketch", about="ImageNet-Sketch: test")
DATASETS.register("objectnet", "bench.datasets.imagenet_subsets:ObjectNet",
                  about="ObjectNet 1.0: test, scored on the 113 ImageNet-overlapping classes, 2px border cropped")
DATASETS.register("iwildcam", "bench.datasets.wilds_ds:IWildCam",
                  about="WILDS iWildCam v2.0: train, id_val, id_test, val (OOD), test (OOD); F1-macro_all")
DATASETS.register("fmow", "bench.datasets.wilds_ds:FMoW",
                  about="WILDS FMoW v1.1: train, id_val, id_test, val (OOD), test (OOD); acc_avg, acc_worst_region")
DATASETS.register("caltech101", "bench.datasets.transfer:Caltech101", about="Caltech101: train, val, test (seeded 60/20/20)")
DATASETS.register("stanfordcars", "bench.datasets.transfer:StanfordCars", about="Stanford Cars: train, val (FLYP's 80/20), test")
DATASETS.register("flowers102", "bench.datasets.transfer:Flowers102", about="Oxford Flowers102: official train, val, test")
DATASETS.register("pcam", "bench.datasets.transfer:PatchCamelyon", about="PatchCamelyon: train, val, test")
DATASETS.register("sst2", "bench.datasets.transfer:RenderedSST2", about="Rendered SST2: train, val, test")
DATASETS.register("eurosat", "bench.datasets.transfer:EuroSAT", about="EuroSAT RGB: train, val, test (seeded 60/20/20)")
