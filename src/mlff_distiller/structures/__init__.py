"""structures stage of mlff-distiller: sources (SMILES, SDF, ASE files) and augmentations."""

from mlff_distiller.structures.config import GenerateConfig
from mlff_distiller.structures.generate import generate_structures, summary_path

__all__ = ["GenerateConfig", "generate_structures", "summary_path"]
