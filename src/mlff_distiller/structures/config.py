"""`GenerateConfig`: everything `mlffd generate` does, as frozen dataclasses loadable from YAML.

YAML example (every key optional except one source and ``out``)::

    smiles: molecules.smi          # or  input: structures.sdf / .xyz / .extxyz / ...
    out: pool.extxyz
    conformers: 4
    rattle: {n: 2, sigma: [0.01, 0.08]}
    normal_modes: {n: 2, temperature: 300}
    md: {steps: 200, stride: 20, temperature: [300, 600]}   # conformer c at T[c % 2]
    bond_scan: {scales: [0.85, 0.93, 1.1, 1.25], bonds: 2}
    teacher: sevennet               # drives normal modes and MD
    workers: 2                      # MD / normal modes of 2 molecules at a time
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlff_distiller.errors import InputError


@dataclass(frozen=True)
class RattleConfig:
    n: int = 2  # rattled copies per conformer (0 = off)
    sigma: tuple[float, float] = (0.01, 0.08)  # Å, per-copy sigma drawn uniformly in this range


@dataclass(frozen=True)
class NormalModeConfig:
    n: int = 0  # thermal normal-mode samples per conformer (0 = off; needs the teacher)
    temperature: float = 300.0  # K
    relax_steps: int = 100  # teacher BFGS steps before the Hessian
    min_frequency_cm: float = 50.0  # modes below this (cm^-1) are not sampled
    quantum: bool = True  # quantum (zero-point) amplitudes instead of classical


@dataclass(frozen=True)
class TeacherMDConfig:
    steps: int = 0  # Langevin steps per conformer (0 = off; needs the teacher)
    stride: int = 20  # keep a frame every this many steps
    temperature: float | tuple[float, ...] = 500.0  # K; a list [T0, T1, ...] runs conformer c
    #                                                   at T[c % len]: one range, no extra MD
    timestep: float = 0.5  # fs
    friction: float = 0.01  # 1/fs

    def temperature_of(self, conformer: int) -> float:
        """Langevin temperature (K) of conformer index ``conformer``."""
        if isinstance(self.temperature, tuple):
            return float(self.temperature[conformer % len(self.temperature)])
        return float(self.temperature)


@dataclass(frozen=True)
class BondScanConfig:
    scales: tuple[float, ...] = ()  # bond length / equilibrium, e.g. (0.85, 0.93, 1.1, 1.25)
    bonds: int = 2  # random bonds scanned per conformer


@dataclass(frozen=True)
class GenerateConfig:
    out: str = "pool.extxyz"  # output extxyz; a JSON summary goes beside it
    smiles: str | None = None  # SMILES file ('SMILES name' per line)
    input: str | None = None  # SDF, XYZ/extxyz or any ASE-readable file
    conformers: int = 4  # ETKDG conformers per SMILES
    optimize_conformers: bool = True  # MMFF-relax conformers before augmenting
    keep_conformers: bool = True  # include the starting geometries themselves
    max_molecules: int | None = None  # use only the first N molecules of the source
    seed: int = 0
    rattle: RattleConfig = field(default_factory=RattleConfig)
    normal_modes: NormalModeConfig = field(default_factory=NormalModeConfig)
    md: TeacherMDConfig = field(default_factory=TeacherMDConfig)
    bond_scan: BondScanConfig = field(default_factory=BondScanConfig)
    min_distance: float = 0.5  # Å; structures with a closer pair are rejected
    min_bond_fraction: float = 0.6  # reject a pair closer than this x the sum of their
    #   covalent radii (C-H 0.64 Å, C-C 0.91 Å): far outside any chemistry, forces of tens
    #   of eV/Å where teachers extrapolate; 0 = off. Bond scans to 0.82 are kept.
    dedup_tolerance: float = 0.01  # Å; max pair-distance difference of duplicates (0 = off)
    teacher: str = "sevennet"  # teacher spec for normal modes / MD (see teachers.registry)
    teacher_weights: str | None = None
    device: str = "cpu"
    workers: int = 1  # processes that run molecules in parallel, each with its own teacher;
    #                   1 = in this process. Used only for teacher work (MD, normal modes)

    def __post_init__(self) -> None:
        if (self.smiles is None) == (self.input is None):
            raise InputError("generate needs exactly one source: --smiles FILE or --input FILE "
                             f"(got smiles={self.smiles!r}, input={self.input!r})")
        if self.conformers < 1:
            raise InputError(f"conformers must be >= 1, got {self.conformers}")
        lo, hi = self.rattle.sigma
        if not 0 <= lo <= hi:
            raise InputError(f"rattle.sigma must be [low, high] with 0 <= low <= high, got "
                             f"{list(self.rattle.sigma)}")
        temperatures = (self.md.temperature if isinstance(self.md.temperature, tuple)
                        else (self.md.temperature,))
        if not temperatures or any(not t > 0 for t in temperatures):
            raise InputError(f"md.temperature must be a temperature in K > 0 or a non-empty "
                             f"list of them, got {self.md.temperature!r}")
        if self.md.steps and self.md.stride < 1:
            raise InputError(f"md.stride must be >= 1, got {self.md.stride}")
        if any(s <= 0 for s in self.bond_scan.scales):
            raise InputError(f"bond_scan.scales must be > 0, got {list(self.bond_scan.scales)}")
        if self.min_distance < 0:
            raise InputError(f"min_distance must be >= 0 Å, got {self.min_distance}")
        if not 0 <= self.min_bond_fraction < 1:
            raise InputError(f"min_bond_fraction must be in [0, 1) (a fraction of the "
                             f"covalent bond length; 0 = off), got {self.min_bond_fraction}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise InputError(f"workers must be an integer >= 1 (worker processes, each with "
                             f"its own teacher), got {self.workers!r}; use 1 to generate in "
                             "this process")

    @property
    def needs_teacher(self) -> bool:
        return self.normal_modes.n > 0 or self.md.steps > 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerateConfig:
        """Build from a plain dict (YAML); unknown keys are an InputError naming them."""
        return _build(cls, data, "generate config")

    @classmethod
    def load(cls, path: str | Path | None = None,
             overrides: dict[str, Any] | None = None) -> GenerateConfig:
        """YAML file (optional) plus overrides; override keys may be dotted (``md.steps``)
        and ``None`` values are ignored (an unset CLI option)."""
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            path = Path(path)
            if not path.is_file():
                raise InputError(f"generate config {path}: no such file")
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise InputError(f"generate config {path}: expected a mapping of options")
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            section, _, name = key.rpartition(".")
            target = data.setdefault(section, {}) if section else data
            if not isinstance(target, dict):
                raise InputError(f"generate config: {section!r} must be a mapping")
            target[name] = value
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown option(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        sub = _SECTIONS.get(name) if cls is GenerateConfig else None
        if sub is not None and not isinstance(value, sub):
            value = _build(sub, value or {}, f"{where}.{name}")
        elif name == "temperature" and cls is TeacherMDConfig and isinstance(value, (list, tuple)):
            if not all(isinstance(v, (int, float)) for v in value):
                raise InputError(f"{where}.temperature: expected K or a list of K, got {value!r}")
            value = tuple(float(v) for v in value)
        elif name in ("scales", "sigma"):
            if not isinstance(value, (list, tuple)):
                raise InputError(f"{where}.{name}: expected a list of numbers, got {value!r}")
            value = tuple(float(v) for v in value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None


_SECTIONS = {"rattle": RattleConfig, "normal_modes": NormalModeConfig, "md": TeacherMDConfig,
             "bond_scan": BondScanConfig}
