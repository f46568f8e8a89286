"""`DistillConfig`: one YAML file describing a whole `mlffd distill` run.

Each section is validated by the stage it configures (``generate`` by
:class:`~mlff_distiller.structures.config.GenerateConfig`, ``train`` by
:class:`~mlff_distiller.training.config.TrainConfig`, ``md`` by
:class:`~mlff_distiller.md.runs.MDConfig`), so a typo fails before any work starts.
See ``configs/demo.yaml`` for a commented example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlff_distiller.errors import InputError

#: gate name -> (result, path in its JSON, comparison, what it means)
GATES: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "min_force_r2": ("evaluation", ("forces", "r2"), ">=", "hold-out force R²"),
    "max_force_mae": ("evaluation", ("forces", "mae"), "<=", "hold-out force MAE (eV/Å)"),
    "max_force_rmse": ("evaluation", ("forces", "rmse"), "<=", "hold-out force RMSE (eV/Å)"),
    "max_nve_drift": ("md", ("summary", "nve_drift_percent_per_100_steps_max"), "<=",
                      "worst NVE drift (% per 100 steps)"),
    "min_nve_stable_fraction": ("md", ("summary", "nve_stable_fraction"), ">=",
                                "fraction of stable NVE runs"),
    "min_nvt_stable_fraction": ("md", ("summary", "nvt_stable_fraction"), ">=",
                                "fraction of stable NVT runs"),
    "max_opt_rmsd": ("md", ("summary", "optimisation_rmsd_mean_A"), "<=",
                     "mean RMSD of relaxed geometries vs teacher (Å)"),
}

PRESET_NAMES = ("original", "tiny", "ultra-tiny")


@dataclass(frozen=True)
class OnPolicyConfig:
    """On-policy augmentation: student MD -> least reliable frames -> teacher -> retrain."""

    rounds: int = 0  # augmentation rounds after the first training (0 = off)
    molecules: int = 16  # training molecules to start student MD from, per round
    md_steps: int = 200  # Langevin steps per start
    stride: int = 10  # candidate frame every this many steps
    temperature_K: float = 500.0  # hotter than the validation MD, to find weak spots
    timestep_fs: float = 0.5
    frames_per_molecule: int = 4  # most uncertain frames kept per start
    min_distance_A: float = 0.6  # frames with a closer pair (exploded) are dropped
    seed: int = 0


DEFAULT_EXPORT_FORMATS = ("torchscript", "onnx")  # when the export section names none


#: keys of the ``split:`` section: ``data.splits.split_dataset`` arguments, and the
#: ``data.filter.filter_dataset`` criteria applied to the labels before splitting
SPLIT_KEYS = ("ratios", "seed", "train_ids", "val_ids", "test_ids", "min_bond_fraction",
              "max_force")


@dataclass(frozen=True)
class DistillConfig:
    """A whole distillation run (see ``configs/demo.yaml``)."""

    run_dir: str = "runs/distill"  # everything the run writes goes here
    teacher: str = "sevennet"  # teacher spec (sevennet, xtb, orb, mace:PATH, ase:mod:factory)
    teacher_weights: str | None = None  # local weights for teachers that download them
    device: str = "cpu"
    students: tuple[str, ...] = PRESET_NAMES  # presets to train
    generate: dict = field(default_factory=dict)  # GenerateConfig fields (out/teacher are set)
    label: dict = field(default_factory=dict)  # workers, chunk_size, hessian_rows, ray_address
    split: dict = field(default_factory=lambda: {"ratios": [0.8, 0.1, 0.1], "seed": 0})
    #              (+ min_bond_fraction / max_force: drop such structures first, see SPLIT_KEYS)
    train: dict = field(default_factory=dict)  # TrainConfig fields for every preset
    train_overrides: dict = field(default_factory=dict)  # preset -> TrainConfig fields
    onpolicy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    evaluate: dict = field(default_factory=lambda: {"split": "test"})
    md: dict = field(default_factory=dict)  # MDConfig fields; molecules: [SMILES or files]
    #                                         (default: n_molecules held-out test molecules)
    export: dict = field(default_factory=lambda: {"formats": list(DEFAULT_EXPORT_FORMATS)})
    bench: dict = field(default_factory=dict)  # benchmark() keyword arguments
    gates: dict = field(default_factory=dict)  # gate name -> threshold (see GATES)

    def __post_init__(self) -> None:
        unknown_presets = sorted(set(self.students) - set(PRESET_NAMES))
        if not self.students or unknown_presets:
            raise InputError(f"students: {list(self.students)}: expected a non-empty list "
                             f"of presets from {list(PRESET_NAMES)}")
        unknown_gates = sorted(set(self.gates) - set(GATES))
        if unknown_gates:
            raise InputError(f"gates: unknown gate(s) {unknown_gates}; known: {sorted(GATES)}")
        for name, value in self.gates.items():
            if not isinstance(value, (int, float)):
                raise InputError(f"gates.{name}: expected a number, got {value!r}")
        for preset in self.train_overrides:
            if preset not in PRESET_NAMES:
                raise InputError(f"train_overrides: {preset!r} is not a preset "
                                 f"{list(PRESET_NAMES)}")
        # Validate the stage sections now, so a typo fails before hours of labeling.
        unknown_split = sorted(set(self.split) - set(SPLIT_KEYS))
        if unknown_split:
            raise InputError(f"split: unknown key(s) {unknown_split}; known: {list(SPLIT_KEYS)}")
        self.generate_config(Path(self.run_dir) / "pool.extxyz")
        for preset in self.students:
            self.train_config(preset)
        self.md_config()

    # --- stage configs ---------------------------------------------------------------
    @property
    def export_formats(self) -> list[str]:
        """The export formats the run writes (``export.formats``)."""
        return list(self.export.get("formats", DEFAULT_EXPORT_FORMATS))

    def generate_config(self, out: Path):
        from mlff_distiller.structures.config import GenerateConfig

        data = {"smiles": "organic", **self.generate, "out": str(out), "teacher": self.teacher,
                "teacher_weights": self.teacher_weights, "device": self.device}
        if "input" in self.generate:
            data.pop("smiles")
        return GenerateConfig.from_dict(data)

    def train_config(self, preset: str):
        from mlff_distiller.training.config import TrainConfig

        data = {**self.train, **self.train_overrides.get(preset, {})}
        return TrainConfig.from_dict(data, source=f"distill config: train (preset {preset})")

    def md_config(self):
        from mlff_distiller.md.runs import MDConfig

        data = {k: v for k, v in self.md.items()
                if k not in ("molecules", "n_molecules", "with_teacher")}
        return _dataclass_from(MDConfig, data, "md")

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> DistillConfig:
        """Read YAML and apply ``section.key=value`` overrides (values parsed as YAML)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InputError(f"distill config {path}: no such file (see configs/demo.yaml)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"distill config {path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"distill config {path}: expected a mapping of sections")
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"override {item!r}: expected section.key=value")
            *sections, name = key.split(".")
            target = data
            for s in sections:
                target = target.setdefault(s, {})
                if not isinstance(target, dict):
                    raise InputError(f"override {item!r}: {s!r} is not a section")
            target[name] = yaml.safe_load(value)
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "distill config") -> DistillConfig:
        data = dict(data)
        if "onpolicy" in data:
            data["onpolicy"] = _dataclass_from(OnPolicyConfig, data["onpolicy"] or {},
                                               f"{where}: onpolicy")
        if "students" in data:
            data["students"] = tuple(data["students"])
        return _dataclass_from(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dataclass_from(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{where}: unknown option(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None
