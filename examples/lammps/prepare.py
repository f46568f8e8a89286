"""Prepare a LAMMPS run of a student: metatomic export + data file + type map.

    python examples/lammps/prepare.py STUDENT.safetensors [--out run_dir]

Writes ``student.pt`` (metatomic model, checked against the eager student through
metatomic's ASE calculator), ``system.data`` (a periodic box of small molecules made of the
student's elements) and ``types.in`` (the ``pair_coeff`` line mapping LAMMPS atom types to
atomic numbers), then prints the LAMMPS command to run ``in.nvt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from mlff_distiller.export import export_student
from mlff_distiller.export.quantize_report import md_molecule
from mlff_distiller.models.checkpoint import load_student


def molecule_box(elements, copies: int = 8, spacing: float = 6.0, seed: int = 0) -> Atoms:
    """``copies`` randomly rotated copies of a small molecule on a cubic grid (periodic)."""
    rng = np.random.default_rng(seed)
    base = md_molecule(elements)
    side = int(np.ceil(copies ** (1 / 3)))
    box = Atoms(cell=np.eye(3) * side * spacing, pbc=True)
    for k in range(copies):
        mol = base.copy()
        mol.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COP")
        mol.translate(np.array(np.unravel_index(k, (side,) * 3)) * spacing
                      - mol.get_center_of_mass() + spacing / 2)
        box += mol
    return box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("student", help="student checkpoint (.safetensors)")
    parser.add_argument("--out", default="lammps_run", help="output folder")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    student = load_student(args.student)
    result = export_student(student, "metatomic", out / "student.pt")
    print(f"metatomic export: parity {'PASSED' if result['parity']['passed'] else 'FAILED'}")
    system = molecule_box(student.elements)
    species = sorted(set(system.get_chemical_symbols()), key=lambda s: Atoms(s).numbers[0])
    write(out / "system.data", system, format="lammps-data", specorder=species, masses=True)
    numbers = " ".join(str(Atoms(s).numbers[0]) for s in species)
    (out / "types.in").write_text(f"pair_coeff * * {numbers}\n")
    print(f"{len(system)} atoms, LAMMPS types {species} -> Z {numbers}")
    print(f"run: cd {out} && lmp -in {Path(__file__).with_name('in.nvt').resolve()}")


if __name__ == "__main__":
    main()
