"""schnetpack's PaiNN trained like our students (reference for distill_quality.py).

Runs in the schnetpack venv (see distill_quality.py). Same data (the dataset's train/val/
test splits and neighbour lists), same per-element energy references and force-RMS scale,
same loss, AdamW, warm-up + cosine over the CPU-time budget, EMA and best-on-validation
selection as mlff_distiller.training; only the network is schnetpack's
(``schnetpack.representation.PaiNN`` + ``Atomwise`` + ``Forces``, Gaussian RBF, cosine
cutoff, sizes of our presets).

Usage: schnetpack_painn.py DATA.h5 PRESET OUT.json BUDGET_S THREADS
"""

from __future__ import annotations

import copy
import json
import sys
import time
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.data.dataloader as _dataloader  # noqa: E402

# schnetpack 2.1 imports a name torch 2.13 no longer has; a TypeVar is all it needs.
_dataloader.T_co = typing.TypeVar("T_co", covariant=True)
import schnetpack as spk  # noqa: E402

from mlff_distiller import keys  # noqa: E402
from mlff_distiller.models.presets import preset_config  # noqa: E402
from mlff_distiller.training.config import load_train_config  # noqa: E402
from mlff_distiller.training.data import load_splits  # noqa: E402
from mlff_distiller.training.loss import (  # noqa: E402
    LossWeights,
    batch_errors,
    combine,
    loss_terms,
    summarize_errors,
)
from mlff_distiller.training.normalization import fit_element_energies, fit_scales  # noqa: E402
from mlff_distiller.training.optim import EMA, LRSchedule  # noqa: E402


class SchnetStudent(torch.nn.Module):
    """schnetpack PaiNN behind our batch dict: energy = scale * network + sum of refs."""

    def __init__(self, hidden, n_int, n_rbf, cutoff, elements, refs, scale):
        super().__init__()
        self.net = spk.model.NeuralNetworkPotential(
            representation=spk.representation.PaiNN(
                n_atom_basis=hidden, n_interactions=n_int,
                radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
                cutoff_fn=spk.nn.CosineCutoff(cutoff)),
            input_modules=[spk.atomistic.PairwiseDistances()],
            output_modules=[spk.atomistic.Atomwise(n_in=hidden, output_key="energy"),
                            spk.atomistic.Forces(energy_key="energy", force_key="forces")])
        table = torch.zeros(119, dtype=torch.float64)
        table[list(elements)] = torch.as_tensor(refs)
        self.register_buffer("refs", table)
        self.scale = float(scale)

    def forward(self, batch: dict) -> dict:
        r = batch[keys.POSITIONS]
        cell = batch[keys.CELL][batch[keys.BATCH][batch[keys.EDGE_INDEX][0]]]
        offsets = torch.bmm(batch[keys.EDGE_SHIFT].unsqueeze(1), cell).squeeze(1)
        inputs = {spk.properties.Z: batch[keys.ATOMIC_NUMBERS], spk.properties.R: r,
                  spk.properties.idx_m: batch[keys.BATCH],
                  spk.properties.n_atoms: batch[keys.NUM_ATOMS],
                  spk.properties.idx_i: batch[keys.EDGE_INDEX][0],
                  spk.properties.idx_j: batch[keys.EDGE_INDEX][1],
                  spk.properties.offsets: offsets, spk.properties.cell: batch[keys.CELL],
                  spk.properties.pbc: batch[keys.PBC]}
        out = self.net(inputs)
        ref = torch.zeros_like(out["energy"]).index_add_(
            0, batch[keys.BATCH], self.refs[batch[keys.ATOMIC_NUMBERS]].to(out["energy"].dtype))
        return {keys.ENERGY: self.scale * out["energy"] + ref,
                keys.FORCES: self.scale * out["forces"]}


def main() -> None:
    data, preset, out_path, budget, threads = sys.argv[1:6]
    budget = float(budget)
    torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    # sys.argv[6:]: key=value training options shared with our run (distill_quality --train-set)
    config = load_train_config(None, [*sys.argv[6:], f"time_budget_s={budget}",
                                      "max_epochs=100000"])
    arch = preset_config(preset)
    train, val, _ = load_splits(data, arch.cutoff, torch.float32, 0.1, 0)
    refs = fit_element_energies(train.graphs, train.elements)
    scales = fit_scales(train.graphs, train.elements, refs)
    model = SchnetStudent(arch.hidden, arch.n_interactions, arch.n_rbf, arch.cutoff,
                          train.elements, refs, scales.energy)
    ema_model = copy.deepcopy(model)
    ema = EMA(model, ema_model, config.ema_decay)
    weights = LossWeights(config.energy_weight, config.force_weight, 0.0, 0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    schedule = LRSchedule.from_config(config, 10**9)
    best, best_state, step, epoch = float("inf"), None, 0, 0
    start = time.process_time()
    done = False
    while not done:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(train), config.batch_size):
            elapsed = time.process_time() - start
            if elapsed >= budget:
                done = True
                break
            batch = train.batch(order[i:i + config.batch_size].tolist())
            for group in optimizer.param_groups:
                group["lr"] = schedule.lr(step, elapsed / budget)
            model.train()
            loss = combine(loss_terms(model(batch), batch, scales, weights), weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(step)
            step += 1
        epoch += 1
        ema_model.eval()
        sums: dict = {}
        for i in range(0, len(val), 32):
            batch = val.batch(list(range(i, min(i + 32, len(val)))))
            for k, v in batch_errors(ema_model(batch), batch).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        val_mae = summarize_errors(sums)["force_mae"]
        if val_mae < best:
            best, best_state = val_mae, copy.deepcopy(ema_model.state_dict())
    ema_model.load_state_dict(best_state)
    ema_model.eval()
    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.evaluation.metrics import (
        energy_metrics,
        force_metrics,
        relative_energy_metrics,
    )

    ds = LabeledDataset(data, split="test", cutoff=arch.cutoff, dtype=torch.float32)
    pred_e, pred_f, ref_e, ref_f, n_atoms, mol = [], [], [], [], [], []
    for i in range(len(ds)):
        g = ds[i]
        out = ema_model(g)
        pred_e.append(float(out[keys.ENERGY][0].detach()))
        pred_f.append(out[keys.FORCES].detach().double().numpy())
        ref_e.append(float(g[keys.ENERGY][0]))
        ref_f.append(g[keys.FORCES].double().numpy())
        n_atoms.append(len(g[keys.ATOMIC_NUMBERS]))
        mol.append(int(g[keys.MOLECULE_ID][0]))
    f = force_metrics(np.concatenate(pred_f), np.concatenate(ref_f))
    e = energy_metrics(np.array(pred_e), np.array(ref_e), np.array(n_atoms))
    rel = relative_energy_metrics(np.array(pred_e), np.array(ref_e), np.array(n_atoms),
                                  np.array(mol))
    result = {"force_r2": f["r2"], "force_rmse": f["rmse"], "force_mae": f["mae"],
              "angular_error_mean_deg": f["angular_error_mean_deg"],
              "energy_mae_per_atom": e["mae_per_atom"],
              "relative_energy_mae_per_atom": rel["mae_per_atom"],
              "n_test_structures": len(n_atoms),
              "parameters": sum(p.numel() for p in model.parameters()), "steps": step,
              "epochs": epoch, "train_time_s": budget,
              "train_structures_per_s": step * config.batch_size / budget,
              "best_val_force_mae": best, "schnetpack_version": spk.__version__}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
