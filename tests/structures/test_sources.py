

def test_seed_zero_gives_distinct_conformers():
    import numpy as np

    from mlff_distiller.structures.sources import embed_conformers

    conformers = embed_conformers("CCCCO", 3, seed=0)
    assert len(conformers) == 3
    assert np.abs(conformers[0].positions - conformers[1].positions).max() > 0.1
