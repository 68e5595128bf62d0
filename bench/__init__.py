"""flyp-bench: finetune zero-shot image-text models (FLYP, FT, LP-FT, WiSE-FT, ...) and measure ID/OOD."""
__version__ = "0.1.0"
