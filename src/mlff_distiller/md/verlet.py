"""Velocity Verlet (NVE) for students: ASE's integrator without ASE's per-step bookkeeping.

ASE's ``VelocityVerlet`` step through :class:`~mlff_distiller.md.calculator.StudentCalculator`
spends 150-400 µs outside the model on a molecule of 9-76 atoms (Atoms accessors, the calculator
protocol and its change checks, the neighbour-list check and pruning, array conversions),
as long as a ``tiny`` student's forces on 9-20 atoms. :class:`StudentVerlet` is that
integrator, with the same arguments, observers, trajectory and logging, whose step, when
the atoms' calculator is a ``StudentCalculator`` on its fast path and the atoms have no
constraints, does the same float64 operations as ASE's step on the Atoms'
own arrays and calls the calculator's energy + forces function directly (the compiled
program with ``compile=True``)::

    p(t + dt/2) = p(t) + (dt/2) F(t)
    r(t + dt)   = r(t) + dt p(t + dt/2) / m
    E, F(t + dt) = student(r(t + dt))
    p(t + dt)   = p(t + dt/2) + (dt/2) F(t + dt)

so both follow the same trajectory, molecules and periodic cells alike. Anything else
(another calculator, constraints, forces handed to ``step``) takes ASE's step unchanged.
With ``compile=True`` on a CPU the compiled program takes the whole step, these float64
operations included (:class:`~mlff_distiller.md.fast.VerletStep`), and predicts how far the
next step will move the atoms; a step predicted to stay within the pair list's reach
skips numpy altogether (the program checks the positions it used, and the step is taken
again on a redrawn list if an observer's change sent them further). Same trajectory, bit
for bit; against the numpy step around the same program (``benchmarks/md_program_step.py``,
1 thread), ``tiny`` steps 1.09 / 1.08 / 1.07x faster at 9 / 20 / 40 atoms, ``original``
1.07x at 9 atoms and 1.01-1.03x from 20 atoms, where it then (session 23) pruned its list
every step and so still computed the positions in numpy first.

Pairs: the student must see every pair within its cutoff; pairs beyond it contribute
exactly zero, so the list may hold extra ones. A *margin* list holds the pairs that were
within ``cutoff + margin`` when it was drawn from the calculator's Verlet list. The
candidates it lacks within :data:`WATCH_BAND` (1.5 Å) of ``cutoff + margin`` are
*watched*: every step measures them at the positions it uses (in the compiled program,
which also reports the step's largest move, from which the next step is predicted to
keep them beyond the cutoff or sent through numpy's check first), and the list is redrawn
for any step that brings one within the cutoff. The pairs beyond the band, and those
that are not even candidates (at least
:meth:`~mlff_distiller.md.fast.VerletNeighborList.unlisted_beyond` beyond the cutoff at
the draw; a molecule of up to 128 atoms has every pair as a candidate), bound the atoms'
moves: the list is also redrawn before an atom moves half the least distance by which one
of them was beyond the cutoff. A molecule's list that holds every pair of its atoms (all
of a 9-atom molecule's pairs are within 4 Å) is never redrawn. Against sessions 24-25's
rule (no watched pairs; redrawn once an atom moved half the distance by which its nearest
missing pair was beyond the cutoff), ``tiny``'s margin list (0.2 Å) is redrawn 4 / 28 / 42
times per 1000 steps instead of 76 / 142 / 164 at 20 / 40 / 76 atoms, and its compiled
steps are 1.10 / 1.07 / 1.10x faster (``benchmarks/md_list_reach.py``, 300 K, demo-trained
students, 1 thread; ``original`` 1.05 / 1.02 / 1.04x).
On larger molecules the margin's extra pairs can cost the student more than pruning them
each step, where the student gets only the margin list's pairs now within the cutoff,
measured every step (the margin list, smaller than the calculator's candidates, is still
redrawn as above). By default (``prune=None``) each integrator times both from its first
redraw, in alternating blocks of steps of each kind, and keeps the faster kind
(:class:`~mlff_distiller.md.prune_trial.PruneTrial`: 12 timed steps of each).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase.data import atomic_masses
from ase.md.verlet import VelocityVerlet

from mlff_distiller.errors import InputError
from mlff_distiller.md.analysis import largest_squared_displacement
from mlff_distiller.md.calculator import StudentCalculator
from mlff_distiller.md.fast import (
    CompiledEnergyAndForces,
    kept_pairs,
    pair_squared_lengths,
    same_bytes,
)
from mlff_distiller.md.prune_trial import PruneTrial

DEFAULT_MARGIN = 0.2  # Å beyond the cutoff kept in a margin pair list
# Å beyond cutoff + margin within which the candidates a margin list lacks are watched every
# step; farther ones bound how far the atoms may move. Replayed on one 300 K trajectory of
# tiny (benchmarks/inference.py's molecules), draws per 1000 steps with 0.5 / 1.0 / 1.5 /
# 2.0 Å / every candidate watched: 40 atoms 50 / 33 / 29 / 28 / 27 (72 / 150 / 206 / 268 /
# 451 pairs watched), 76 atoms 57 / 43 / 42 / 42 / 42 (181 / 371 / 548 / 746 / 2,119)
WATCH_BAND = 1.5
# a pair's two atoms may move up to this many times this step's largest move in the next:
# a watched pair closer to the cutoff sends the next step through numpy's list check first
AHEAD_MOVES = 3.0


class StudentSteps:
    """What :class:`StudentVerlet` and :class:`~mlff_distiller.md.langevin.StudentLangevin`
    add to ASE's integrator they are mixed into: the pair-list arguments, the check that a
    fast step may start from the calculator's current results, and skipping ASE's extra
    force call after a fast step. A subclass's ``step`` calls :meth:`_fast_state` and
    takes ASE's step when it returns None."""

    def __init__(self, atoms, timestep: float, margin: float = DEFAULT_MARGIN,
                 prune: bool | None = None, **kwargs):
        super().__init__(atoms, timestep=timestep, **kwargs)  # ASE's integrator
        self._init_student(margin, prune)

    def _init_student(self, margin: float, prune: bool | None) -> None:
        name = type(self).__name__
        if not margin > 0:
            raise InputError(f"{name} margin={margin} Å (expected > 0)")
        if prune not in (None, True, False):
            raise InputError(f"{name} prune={prune!r} (expected None, True or False)")
        self.margin = float(margin)
        self.prune = prune
        self.fast_steps = 0  # steps taken without ASE's bookkeeping
        self.list_draws = 0  # margin lists drawn
        self.program_steps = 0  # fast steps taken whole by the compiled program
        # program steps whose positions turned out beyond the list's reach (taken again)
        self.program_retries = 0
        self._state: _PairList | None = None
        self._checked = False  # the calculator's state was checked in this run
        self._fresh = False  # the last step left the calculator's results current

    def irun(self, steps=50):
        # the first step of each run checks calculator and weights, and is not timed
        self._checked = False
        return super().irun(steps)

    def _fast_state(self, forces, constraints_allowed: bool) -> _PairList | None:
        """The pair list for a fast step from the atoms' current positions (the calculator's
        results then hold their forces), or None when ASE's step must be taken: forces
        handed in, another calculator, or constraints (unless ``constraints_allowed`` and
        none changes the forces an MD step sees)."""
        atoms = self.atoms
        calc = atoms.calc
        self._fresh = False
        if forces is not None or not _fast_path_applies(atoms, calc, constraints_allowed):
            self._state = None
            return None
        state = self._state
        first_of_run = not self._checked
        if not (self._checked and state is not None and state.current(atoms)):
            if calc._weights_version() != calc._built_from:
                calc.reset()  # its results are those of the old weights
            if calc.atoms is None or "forces" not in calc.results or calc.check_state(atoms):
                atoms.get_forces(md=True)  # the calculator's results now hold these positions
                state = None
            if "momenta" not in atoms.arrays:
                atoms.set_momenta(np.zeros((len(atoms), 3)))
            if (state is None or state.calc is not calc or state.fn is not calc._fast_fn
                    or not state.made_for(atoms)):  # a new cell's shifts need a new list
                state = self._state = _PairList(calc, atoms,
                                                min(self.margin, calc.neighbors.skin), self.prune)
            self._checked = True
        if state.timing:  # the trial of both kinds of step is under way
            state.step_started(atoms, self.list_draws, first_of_run)
        self.fast_steps += 1
        self._fresh = True
        return state

    def last_step_energy(self) -> float | None:
        """The potential energy (eV) the student gave in the last step, for the positions
        that step wrote, or None when the last step was not a fast one (ask the atoms then).
        Not checked against the atoms: read it before anything changes them (the MD
        runner reads it right after each step instead of the calculator's change checks)."""
        return self.atoms.calc.results["energy"] if self._fresh else None

    def _refresh_properties(self):
        # ASE's MD loop asks the calculator for forces after every step; a fast step has
        # just set them for the current positions
        if not self._fresh:
            super()._refresh_properties()


class StudentVerlet(StudentSteps, VelocityVerlet):
    """NVE velocity Verlet; arguments as ASE's ``VelocityVerlet`` plus the pair list's.

    Args:
        atoms: the structure, its calculator attached.
        timestep: in ASE time units (``0.5 * ase.units.fs``).
        margin: Å beyond the cutoff in a margin pair list (at most the calculator's Verlet
            skin): larger redraws the list less often, smaller gives the student fewer
            pairs.
        prune: True prunes the pair list every step, False keeps a margin list, None
            (default) times steps of both kinds and keeps the faster (module docstring).
        **kwargs: passed to ``VelocityVerlet`` (``trajectory``, ``logfile``, ``loginterval``).

    Changes made to the atoms between steps (by an observer, say) are followed; changes to
    the student's weights in place are picked up at the start of each ``run``.
    """

    def step(self, forces=None):
        state = self._fast_state(forces, constraints_allowed=False)
        if state is None:
            return super().step(forces)
        atoms, dt = self.atoms, self.dt
        if state.step_ahead_fits():  # the program may take the step with the list as it is
            forces = state.program_step(atoms, dt, checked=False)
            if forces is not None:
                self.program_steps += 1
                return forces
            self.program_retries += 1
        arrays, calc = atoms.arrays, atoms.calc
        # ASE's VelocityVerlet.step, operation for operation
        momenta = arrays["momenta"] + 0.5 * dt * calc.results["forces"]
        positions = arrays["positions"] + dt * momenta / state.masses_column(atoms)
        if not np.isfinite(positions).all():  # the calculator names them, as in ASE's step
            state.forget()
            np.copyto(arrays["positions"], positions)
            np.copyto(arrays["momenta"], momenta)
            forces = atoms.get_forces(md=True)
            np.add(arrays["momenta"], 0.5 * dt * forces, out=arrays["momenta"])
            return forces
        state.update(positions, atoms, self)
        if state.steps_in_program():  # the same step again, in the program
            self.program_steps += 1
            return state.program_step(atoms, dt, checked=True)
        forces = state.evaluate(positions, atoms, self, listed=True)
        np.copyto(arrays["positions"], positions)
        np.add(momenta, 0.5 * dt * forces, out=arrays["momenta"])
        return forces


def _fast_path_applies(atoms, calc, constraints_allowed: bool) -> bool:
    if not (isinstance(calc, StudentCalculator) and calc.fast and calc.neighbors.skin > 0):
        return False
    if not atoms.constraints:
        return True
    # Atoms.get_forces(md=True) changes the forces only through these two
    return constraints_allowed and not any(
        hasattr(c, "redistribute_forces_md") or hasattr(c, "adjust_potential_energy")
        for c in atoms.constraints)


class _PairList:
    """What :class:`StudentVerlet` keeps between fast steps of one calculator and structure:
    its energy + forces function, the pairs (2, P) the student sees, the positions (N, 3) Å
    a margin list was drawn at, and what the last step wrote.

    With a compiled program (``compile=True`` on a CPU) the program takes the whole step
    (:class:`~mlff_distiller.md.fast.VerletStep`: ASE's float64 operations, the same
    numbers) and reports how far the positions it wrote, and those the next step will
    write, are from where the list was drawn. A step whose predicted positions stay within
    the list's reach goes straight to the program (:meth:`program_step`), which checks
    the positions it actually used, so an observer that changed momenta, forces, masses or
    the time step in between costs a second call, never a stale list. Other steps compute
    the positions in numpy first, update the list, and then call the program."""

    def __init__(self, calc: StudentCalculator, atoms, margin: float, prune: bool | None
                 ) -> None:
        self.calc = calc
        # numbers, cell and pbc it was made for (a change makes StudentVerlet make another)
        self.structure = (atoms.arrays["numbers"].copy(), atoms.cell.array.copy(),
                          atoms.pbc.copy())
        self.fn = calc._fast_fn
        self.margin = margin
        # a margin list holds every pair the student needs while each candidate pair it
        # lacks within WATCH_BAND of cutoff + margin (the *watched* pairs) is beyond the
        # cutoff and no atom has moved from where it was drawn further than the reach: half
        # the least distance by which any other pair was beyond the cutoff. (n,) 1 / reach^2
        # in Å^-2 (0: any distance), the watched pairs (2, M) and their shift vectors (M, 3)
        # Å (None for molecules), and the same as program inputs (a placeholder pair when
        # M = 0)
        self._inverse_reach_squared: np.ndarray | None = None
        self._reach_input: torch.Tensor | None = None
        self._watch: tuple[np.ndarray, np.ndarray | None] | None = None
        self._watch_inputs: list[torch.Tensor] = []
        self._watching = False  # M > 0
        self._cutoff = calc.neighbors.cutoff  # Å
        # True: pruned every step; False: the margin list; None: margin list steps until
        # the trial times pruned ones (the trial, kept once it chose, says what it measured)
        self.prune = prune
        self.trial = PruneTrial() if prune is None else None
        self.timing = False  # the trial has started and not chosen yet
        self.pairs: torch.Tensor | None = None
        self.shift_vectors: torch.Tensor | None = None  # (P, 3) Å for periodic cells
        self._cutoff_squared = calc.neighbors.cutoff ** 2  # Å^2
        # the margin list: pairs (2, M), their cell shifts (M, 3) and shift vectors (M, 3)
        # Å (None for molecules), drawn at `reference`; a pruned list is taken from it
        self._margin_list: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self.reference: np.ndarray | None = None
        self._pairs_source: np.ndarray | None = None
        # a molecule's list holding every pair of its atoms is never redrawn: no pair can
        # be missing from it, and those beyond the cutoff contribute exactly zero
        self.complete = False
        # (n, 3) float32 student input on a CPU, and its numpy view
        self._positions_buffer: tuple[torch.Tensor, np.ndarray] | None = None
        self._written: tuple[dict, np.ndarray] | None = None  # results, positions
        # (n, 1) amu from the numbers (None: not yet, or atoms with masses of their own)
        self.masses: np.ndarray | None = None
        self._periodic = bool(atoms.pbc.any())  # numbers, cell and pbc are fixed for a list
        # the compiled program called directly when the inputs fit it, checked once per
        # structure (atoms, device) and once per pair list (pairs); None: call self.fn,
        # which checks them every call
        self._compiled_ok = (isinstance(self.fn, CompiledEnergyAndForces)
                             and calc.device.type == "cpu" and len(atoms) >= 2)
        self._compiled = None  # the program, looked up at the first list that fits it
        self._program = None
        # the program's inputs that change only with the list, the masses or the time step
        self._reference_input: torch.Tensor | None = None  # (n, 3) float64, self.reference
        self._masses_input: torch.Tensor | None = None  # (n, 1) amu, self.masses
        self._steps_input: tuple[float, torch.Tensor] | None = None  # dt, (dt/2, dt)
        # the reach (see _within_reach) the positions the next step will write use by the
        # atoms' moves, as the last program step predicted them (None: no prediction; the
        # watched pairs are checked at the positions a step used, VerletStep)
        self._next_reach_used: float | None = None

    def made_for(self, atoms) -> bool:
        """True when ``atoms`` have the numbers, cell and pbc this list was made for."""
        numbers, cell, pbc = self.structure
        return (same_bytes(atoms.arrays["numbers"], numbers)
                and same_bytes(atoms.cell.array, cell) and same_bytes(atoms.pbc, pbc))

    def current(self, atoms) -> bool:
        """True when ``atoms`` and the calculator are as the last step left them: the
        calculator's results are then those of ``atoms``' positions."""
        if self._written is None or atoms.calc is not self.calc:
            return False
        results, positions = self._written
        return (self.calc.results is results and same_bytes(atoms.arrays["positions"], positions)
                and self.made_for(atoms))

    def update(self, positions: np.ndarray, atoms, counts: StudentSteps) -> None:
        """Make ``self.pairs`` hold every pair within the cutoff at ``positions`` (n, 3) Å."""
        if self.complete:
            return
        if self.reference is None or not self._holds_every_pair(positions):
            self._draw(positions, atoms, counts)
        elif self.prune:  # the margin list still holds them: keep those within the cutoff
            pairs, pair_shift, shift_vectors = self._margin_list
            keep = pair_squared_lengths(positions, pairs, shift_vectors) < self._cutoff_squared
            self._set_pairs(*kept_pairs(keep, pairs, pair_shift, self._periodic), atoms)

    def _draw(self, positions: np.ndarray, atoms, counts: StudentSteps) -> None:
        """Draw the margin list and its watched pairs from the calculator's Verlet list, and
        hand the student its pairs (those within the cutoff only when pruning)."""
        neighbors, cell, periodic = self.calc.neighbors, atoms.cell.array, self._periodic
        neighbors.update(positions, cell, atoms.pbc, within=self.margin)
        lengths = neighbors.squared_lengths(positions, cell)  # one pass for every limit
        listed = lengths < (neighbors.cutoff + self.margin) ** 2
        far = lengths >= (neighbors.cutoff + self.margin + WATCH_BAND) ** 2
        pairs, pair_shift = kept_pairs(listed, neighbors.pairs, neighbors.pair_shift, periodic)
        watch, watch_shift = kept_pairs(~(listed | far), neighbors.pairs, neighbors.pair_shift,
                                        periodic)
        counts.list_draws += 1
        redraw = self.reference is not None
        self._margin_list = (pairs, pair_shift, pair_shift @ cell if periodic else None)
        self.reference = positions.copy()
        self._reference_input = torch.from_numpy(self.reference)
        # Å by which every pair neither listed nor watched was beyond the cutoff: > 0, as
        # update() keeps unlisted_beyond() at least the margin
        beyond = neighbors.unlisted_beyond()
        if far.any():
            beyond = min(beyond, float(np.sqrt(lengths[far].min())) - neighbors.cutoff)
        self._inverse_reach_squared = np.full(len(positions), 4.0 / (beyond * beyond))
        self._reach_input = torch.from_numpy(self._inverse_reach_squared)
        self._set_watch(watch, watch_shift @ cell if periodic else None)
        self._next_reach_used = None
        if self.prune:
            self._set_pairs(*neighbors.pairs_within(positions, cell, 0.0, lengths), atoms)
            return
        self._use_margin_list(atoms)
        trial = self.trial
        if redraw and trial is not None and not trial.started and not self.complete:
            # a list of every pair skips its updates, so its pruned steps would not prune
            trial.start()
            self.timing = True

    def _use_margin_list(self, atoms) -> None:
        """Hand the student the margin list's pairs (no longer pruned)."""
        pairs, pair_shift, _ = self._margin_list
        self._set_pairs(pairs, pair_shift, atoms)
        n_atoms = len(atoms)
        self.complete = not self._periodic and pairs.shape[1] == n_atoms * (n_atoms - 1) // 2

    def step_started(self, atoms, draws: int, first_of_run: bool) -> None:
        """At the start of each fast step while the trial (:attr:`trial`, prune=None) is
        under way: set the kind of step it hands out, time the steps, and keep the kind it
        chooses for the rest of this list's life."""
        trial = self.trial
        self._set_kind(trial.next_kind(), atoms)
        trial.step_started(bool(self.prune), draws, first_of_run)
        chosen = trial.choose()
        if chosen is not None:
            self.timing = False
            self._set_kind(chosen, atoms)

    def _set_kind(self, pruned: bool, atoms) -> None:
        """Prune from this step on (its list update keeps the pairs within the cutoff), or
        hand the student the margin list again (this step then computes its positions in
        numpy: a pruned step made no prediction for it)."""
        if pruned == bool(self.prune):
            return
        self.prune = pruned
        if not pruned:
            self._use_margin_list(atoms)
            self._next_reach_used = None

    def _set_watch(self, watch: np.ndarray, shift_vectors: np.ndarray | None) -> None:
        """Watch the pairs (2, M) the margin list lacks, with their shift vectors (M, 3) Å
        (None for a molecule); as program inputs, each with the squared cutoff as its limit,
        or one placeholder pair with a limit of zero when there is none (the program's
        shapes need M >= 1; an input that fits it has at least 2 atoms)."""
        self._watch = (watch, shift_vectors)
        self._watching = watch.shape[1] > 0
        if not self._compiled_ok:
            return
        m = watch.shape[1]
        if m:
            inputs = [torch.as_tensor(watch).contiguous(),
                      torch.full((m,), self._cutoff_squared, dtype=torch.float64)]
        else:
            inputs = [torch.tensor([[0], [1]]), torch.zeros(1, dtype=torch.float64)]
        if self._periodic:
            inputs.append(torch.from_numpy(np.ascontiguousarray(shift_vectors)) if m
                          else torch.zeros(1, 3, dtype=torch.float64))
        self._watch_inputs = inputs

    def _holds_every_pair(self, positions: np.ndarray) -> bool:
        """True when the margin list holds every pair within the cutoff at ``positions``
        (n, 3) Å: no atom beyond the reach from where the list was drawn, and every watched
        pair beyond the cutoff (as the program's reach used below 1)."""
        if not self._within_reach(largest_squared_displacement(
                positions, self.reference, self._inverse_reach_squared)):
            return False
        watch, shift_vectors = self._watch
        return watch.shape[1] == 0 or bool(
            pair_squared_lengths(positions, watch, shift_vectors).min() > self._cutoff_squared)

    def _set_pairs(self, pairs: np.ndarray, pair_shift: np.ndarray, atoms) -> None:
        """Pairs (2, P) and their cell shifts (P, 3) as the student's inputs."""
        if pairs is not self._pairs_source:  # the candidates themselves come back as is
            calc = self.calc
            self._pairs_source = pairs
            self.pairs = torch.as_tensor(pairs, device=calc.device).contiguous()
            self.shift_vectors = (
                torch.as_tensor(pair_shift @ atoms.cell.array, dtype=calc.dtype,
                                device=calc.device)
                if self._periodic else None)
            self._program = None
            if self._compiled_ok and pairs.shape[1] >= 1:
                if self._compiled is None:
                    like = torch.empty(0, dtype=calc.dtype)
                    self._compiled = self.fn.program(self._periodic, like)
                self._program = self._compiled

    def masses_column(self, atoms) -> np.ndarray:
        """``atoms.get_masses()[:, None]`` (n, 1) amu. Without masses of their own, the
        atoms' masses follow their numbers, which :meth:`current` checks every step, so
        they are looked up once."""
        arrays = atoms.arrays
        if "masses" in arrays:
            return arrays["masses"][:, None]
        if self.masses is None:
            self.masses = atomic_masses[arrays["numbers"]][:, None]
        return self.masses

    def _student_positions(self, positions: np.ndarray) -> torch.Tensor:
        """``positions`` (n, 3) Å as the student's input: on a CPU in float32, cast into
        one buffer kept for the run (the student does not keep its inputs); else converted."""
        calc = self.calc
        if calc.device.type != "cpu" or calc.dtype != torch.float32:
            return torch.as_tensor(positions, dtype=calc.dtype, device=calc.device)
        if self._positions_buffer is None or self._positions_buffer[1].shape != positions.shape:
            buffer = torch.empty(positions.shape, dtype=torch.float32)
            self._positions_buffer = (buffer, buffer.numpy())
        buffer, view = self._positions_buffer
        np.copyto(view, positions, casting="same_kind")
        return buffer

    def forget(self) -> None:
        """Drop the list's reference positions and the calculator's results (their positions
        were not finite: the calculator's own check then names them)."""
        self.reference = self._written = self._next_reach_used = None
        self.calc.reset()

    def steps_in_program(self) -> bool:
        """True when the compiled program takes whole steps of this list (a CPU program and
        a list it fits)."""
        return self._program is not None

    def step_ahead_fits(self) -> bool:
        """True when the last program step predicted that the next one stays within this
        list's reach: finite positions, no atom beyond the reach from where the list was
        drawn, and a list that is not pruned every step (whether a watched pair comes within
        the cutoff is found by the step's own check)."""
        used = self._next_reach_used
        if used is None or self._program is None or self.prune:
            return False
        return self._within_reach(used)

    @staticmethod
    def _within_reach(used: float) -> bool:
        """True when positions that use ``used`` of their reach (the largest squared move
        from :attr:`reference` weighted by 1 / reach^2; not finite for non-finite positions)
        have all their pairs in this list."""
        return used < 1.0

    def program_step(self, atoms, dt: float, checked: bool) -> np.ndarray | None:
        """One velocity Verlet step of ``atoms`` in the compiled program: ASE's operations on
        the atoms' positions, momenta, masses and the calculator's forces, written back to
        the atoms and the calculator as :class:`StudentVerlet`'s numpy step writes them.
        ``checked``: the caller has updated the list for this step's positions. Otherwise the
        positions the program used are checked against the list, and None is returned
        (nothing written) when the list does not reach them or they are not finite. The new
        forces (N, 3) eV/Å otherwise."""
        arrays, calc = atoms.arrays, self.calc
        inputs = [torch.from_numpy(arrays["positions"]), torch.from_numpy(arrays["momenta"]),
                  torch.from_numpy(np.ascontiguousarray(calc.results["forces"],
                                                        dtype=np.float64)),
                  self._masses_tensor(atoms), self._steps_tensor(dt), self._reference_input,
                  self._reach_input, *self._watch_inputs[:2], calc._inputs["species"],
                  self.pairs]
        if self.shift_vectors is not None:
            inputs += [self.shift_vectors, self._watch_inputs[2]]
        forces, positions, momenta, scalars = self._program(inputs)
        energy, used, upcoming_used, moved_squared = scalars.tolist()
        self._next_reach_used = self._predicted_use(used, upcoming_used, moved_squared)
        if not checked and not self._within_reach(used):
            self._next_reach_used = None
            return None
        positions, forces = positions.numpy(), forces.numpy()
        np.copyto(arrays["positions"], positions)
        np.copyto(arrays["momenta"], momenta.numpy())
        return self._record(positions, energy, forces)

    def _predicted_use(self, used: float, upcoming_used: float, moved_squared: float
                       ) -> float:
        """The reach the next step's positions will use, from what a program step reports
        (:class:`~mlff_distiller.md.fast.VerletStep`): ``upcoming_used`` by the atoms' moves,
        or not finite when a watched pair may come within the cutoff: the nearest is at
        least cutoff / sqrt(``used``) away (``used`` counts it), and its two atoms move at
        most :data:`AHEAD_MOVES` x this step's largest move (sqrt(``moved_squared``) Å)
        further together. A wrong guess costs time, never a pair: the step checks the
        positions it used."""
        if not self._watching:
            return upcoming_used
        if not used > 0.0:  # not finite (0 only if the watched pairs were infinitely far)
            return upcoming_used if used == 0.0 else math.inf
        closest = self._cutoff / math.sqrt(used) - AHEAD_MOVES * math.sqrt(moved_squared)
        return upcoming_used if closest > self._cutoff else math.inf

    def _masses_tensor(self, atoms) -> torch.Tensor:
        """:meth:`masses_column` (n, 1) amu as the program's float64 input."""
        masses = self.masses_column(atoms)
        if masses is not self.masses:  # the atoms' own masses: read every step
            return torch.from_numpy(np.ascontiguousarray(masses, dtype=np.float64))
        if self._masses_input is None:  # the elements' masses, looked up once per list
            self._masses_input = torch.from_numpy(masses)
        return self._masses_input

    def _steps_tensor(self, dt: float) -> torch.Tensor:
        """(dt/2, dt) as the program's float64 input (dt/2 as ASE computes ``0.5 * dt``)."""
        kept = self._steps_input
        if kept is None or kept[0] != dt:
            kept = self._steps_input = (dt, torch.tensor([0.5 * dt, dt], dtype=torch.float64))
        return kept[1]

    def evaluate(self, positions: np.ndarray, atoms, counts: StudentSteps,
                 listed: bool = False) -> np.ndarray:
        """The student's forces (n, 3) eV/Å at ``positions`` (n, 3) Å, finite and an array of
        the caller's that it then stores as the atoms' positions. The calculator's results
        and its copy of the atoms are set for them. ``listed``: :meth:`update` has been
        called for these positions."""
        calc = self.calc
        if not listed:
            self.update(positions, atoms, counts)
        inputs = calc._inputs
        if self._program is None:
            energy, forces = self.fn(self._student_positions(positions), inputs["species"],
                                     self.pairs, self.shift_vectors, inputs["batch"], 1)
        else:  # the program's step with a time step of zero
            forces, _, _, scalars = self._program(self.fn.single_point_inputs(
                torch.from_numpy(np.ascontiguousarray(positions)), inputs["species"],
                self.pairs, self.shift_vectors))
            energy = scalars[:1]
        # energy (1,) and forces (N, 3) come without autograd history: .item() and numpy()
        # are one call each where detach()[0].item() and detach().cpu().numpy() were four
        # (4.5 us more per step, warm, 9-20 atoms)
        value = energy.item()
        forces = (forces if forces.is_cpu else forces.cpu()).numpy().astype(np.float64,
                                                                             copy=False)
        return self._record(positions, value, forces)

    def _record(self, positions: np.ndarray, energy: float, forces: np.ndarray) -> np.ndarray:
        """Set the calculator's results (``energy`` eV, ``forces`` (n, 3) eV/Å) and its copy
        of the atoms for ``positions`` (n, 3) Å, remember what was written (:meth:`current`),
        and hand the forces back."""
        calc = self.calc
        np.copyto(calc.atoms.arrays["positions"], positions)
        calc.results = {"energy": energy, "free_energy": energy, "forces": forces}
        self._written = (calc.results, positions)
        return forces


__all__ = ["AHEAD_MOVES", "DEFAULT_MARGIN", "WATCH_BAND", "StudentSteps", "StudentVerlet"]
