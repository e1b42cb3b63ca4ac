"""The pipeline's stages, one module per stage of dvc.yaml; each has ``run(params)``."""
