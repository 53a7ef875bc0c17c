"""ZOO, the zeroth-order black-box attack (Chen et al., AISec 2017; the thesis's chapter 3), vectorised.

ZOO minimises C&W's objective ‖x − x₀‖₂² + c·f(x, t) with f built on the probabilities F(x) only (eq. 10; eq. 11
untargeted) and a gradient estimated by finite differences (eq. 12, plus the coordinate Hessian of eq. 13): each
iteration picks B coordinates of the attack space without replacement and evaluates 2B + 1 images, the current one
and ±h along each coordinate. It talks to the model only through :class:`attacks.oracle.QueryOracle`, which
answers probabilities under ``torch.no_grad`` and counts every image it is shown.

**Vectorised.** All N × (2B + 1) images of an iteration go through the model together (in chunks of
``oracle.ROW_ELEMENTS`` inputs), for every image still running; per-image Adam states (M, v and the per-coordinate
epoch T, as the original code) are read and written by gather/scatter at the sampled coordinates; the binary search
over c, the early abort, the first-success Adam reset and the query budget are per-image masks. Images that abort
or exhaust their budget leave the batch, so they are neither queried nor counted.

**Faithful to the original code** (huanzhang12/ZOO-Attack ``l2_attack_black.py``, the thesis's appendix A.1):
Adam with ε outside the square root and a per-coordinate epoch; Newton with its clamps (ĥ < 0 → 1, then ĥ < 0.1 →
0.1); the ``adam-newton`` hybrid (Newton where ĥ ≥ 0, Adam elsewhere; Adam's moments updated at every sampled
coordinate); success, best-ℓ2 and the returned image judged at the *current* point of each iteration (row 0, before
the update: query-free); the early abort every ``abort_every`` iterations (loss above 0.9999 × the last check);
the binary search from c₀ (×10 until a success, then bisection); the modifier and Adam reset for every c.
Where we differ: κ is kept in the log-probability hinge (the code drops it there); queries are every image
forwarded, 2B + 1 per iteration (the code's ``eval_costs`` counts B).

**Box.** ``projection`` (the thesis's MNIST setting): x = x₀ + D(y), y clipped after each update to the box
[−x₀, 1 − x₀] (to [−1, 1] with a reduced attack space, the image itself then clipped to [0, 1]). ``tanh``:
x = x₀ + (tanh(w₀ + D(y)) − tanh(w₀))/2, w₀ = atanh(2x₀ − 1), so y = 0 is exactly x₀ (CIFAR's setting). Every
image queried is clipped to [0, 1]: at a pixel on the box the difference quotient is one-sided.

**Attack space** (§3.2.2–3.2.4). ``attack_size`` s optimises y of s × s × C, upsampled bilinearly to the image
(eq. 14, D = resize); ``double_at`` and ``double_again_at`` double s (capped at the image) at those iterations of
each c, upsampling y and resetting Adam (the thesis's ImageNet schedule: 32 → 64 at 2,000 → 128 at 10,000).
Importance sampling draws coordinates ∝ |Δy| max-pooled per channel over (s/8)² blocks, with ``at-resize``
(what the code does: its per-iteration refresh tests the batch dimension and never fires; from the first doubling
on) or ``every-iteration`` (what the text says, §3.3.3; also from the first doubling on).

**Randomness.** The coordinates drawn at iteration k of binary step j depend on (coordinate_seed, j, k) only: the same
uniform draw for every image (importance sampling weighs it per image), so an image's result does not depend on its
batch mates.

**Precision.** On CUDA the oracle runs with TF32 off; ``precision="float64"`` runs the model in float64 (slower,
~7× on CPU) for the finite differences of h = 1e-4; losses are formed in float64 either way.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.contract import check_call, check_callback, declare
from attacks.driver import Run, stops
from attacks.losses import hinge_loss, is_adversarial, logit_margin
from attacks.model import PixelModel
from attacks.oracle import QueryOracle, no_tf32
from attacks.params import ABORT_EARLY, BINARY_SEARCH_STEPS, INITIAL_CONST, KAPPA, STEPS, Param, check_params, with_default
from attacks.search import BestTracker, ConstSearch

Solver = Literal["adam", "newton", "adam-newton"]
_TANH_SCALE = 0.999999
_LOG_FLOOR = 1e-30  # log 0 := −∞ in eq. 10; the code's log(F + 1e-30)
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8

SOLVER = Param("solver", str, "adam", "The coordinate update: ZOO-ADAM (Algorithm 2), ZOO-Newton (Algorithm 3, with "
               "the code's clamps ĥ<0→1, ĥ<0.1→0.1) or the code's hybrid (Newton where ĥ ≥ 0, Adam elsewhere).",
               label="solver", choices=("adam", "newton", "adam-newton"))
ZOO_KAPPA = with_default(KAPPA, 0.0, help="κ, confidence in log-probabilities: f = max{max_{i≠t} log F_i − log F_t, "
                         "−κ} (eq. 10; eq. 11 untargeted).")
ZOO_CONST = with_default(INITIAL_CONST, 1e-2, help="c₀, the first weight of f (the thesis: 0.01 on MNIST and "
                         "CIFAR, with binary search; a fixed 10 on ImageNet); ×10 until a success, then bisection.")
ZOO_STEPS = with_default(STEPS, 3000, high=100000, help="Iterations for each value of c, B coordinates each (the "
                         "thesis: 3,000 on MNIST, 1,000 on CIFAR, 1,500–20,000 on ImageNet).")
COORDINATES = Param("coordinates", int, 128, "B, coordinates estimated and updated per iteration: 2B + 1 queries "
                    "an iteration (the thesis: 128).", label="B · coordinates", low=1, high=100000, log=True,
                    group="budget")
MAX_QUERIES = Param("max_queries", int, None, "Query budget per image: it stops once another iteration would pass "
                    "it; None: the iterations are the only limit.", label="query budget", low=1, high=1e12, log=True,
                    group="budget", optional=True)
ABORT_EVERY = Param("abort_every", int, 100, "Early abort: every this many iterations an image stops its value of c "
                    "when its loss has not fallen by 0.01% (the thesis: 100).", label="abort check every",
                    low=1, high=100000, log=True, group="budget")
ZOO_RATE = Param("learning_rate", float, 1e-2, "η, the step size of Algorithms 2 and 3 (the thesis: 0.01; 0.002 on "
                 "ImageNet).", label="η · step size", low=1e-5, high=10.0, log=True, group="advanced", aliases=("lr",))
H = Param("h", float, 1e-4, "h, the finite-difference step of eqs. 12–13 (the thesis: 1e-4).", label="h · step",
          low=1e-8, high=0.1, log=True, group="advanced")
BOX = Param("box", str, "projection", "The box [0,1]: project each updated coordinate (the thesis's MNIST setting: "
            "tanh's gradients vanish near 0 and 1) or the tanh change of variable (CIFAR's).", label="box",
            choices=("projection", "tanh"), group="structure")
ATTACK_SIZE = Param("attack_size", int, None, "s, the side of the attack space s × s × C, upsampled bilinearly to the "
                    "image (eq. 14); None: the image's own size (MNIST, CIFAR).", label="attack-space side",
                    low=1, high=4096, group="structure", optional=True)
DOUBLE_AT = Param("double_at", int, None, "Hierarchical attack: double the attack-space side at this iteration of "
                  "each c (the thesis: 2,000, 32 → 64); None: never.", label="double at iteration", low=1,
                  high=100000, group="structure", optional=True)
DOUBLE_AGAIN_AT = Param("double_again_at", int, None, "Double it again at this iteration (the thesis: 10,000, "
                        "64 → 128); None: never.", label="double again at", low=1, high=100000, group="structure",
                        optional=True)
IMPORTANCE = Param("importance", str, "at-resize", "Importance sampling once the attack space has doubled: draw "
                   "coordinates ∝ max-pooled |Δy| (§3.2.4), refreshed at each doubling (the code) or every "
                   "iteration (the text); off: uniform.", label="importance sampling",
                   choices=("off", "at-resize", "every-iteration"), group="structure")
RESET_ADAM = Param("reset_adam", bool, False, "Reset an image's Adam states when it first succeeds for a value of c "
                   "(§3.3.3, Table 3).", label="reset Adam at first success", group="advanced")
SEED = Param("coordinate_seed", int, 0, "Seed of the coordinate draws (the same draw for every image of a batch).",
             label="coordinate seed", low=0, high=2**31 - 1, group="advanced")
PRECISION = Param("precision", str, "float32", "The model's arithmetic for the queries: float32, or float64 for "
                  "exact finite differences (slower). TF32 is always off on CUDA.", label="precision",
                  choices=("float32", "float64"), group="advanced")

PARAMS = (SOLVER, ZOO_KAPPA, ZOO_CONST, BINARY_SEARCH_STEPS, ZOO_STEPS, COORDINATES, MAX_QUERIES, ABORT_EARLY,
          ABORT_EVERY, ZOO_RATE, H, BOX, ATTACK_SIZE, DOUBLE_AT, DOUBLE_AGAIN_AT, IMPORTANCE, RESET_ADAM, SEED, PRECISION)


@dataclass(frozen=True)
class Settings:
    solver: str
    kappa: float
    initial_const: float
    binary_search_steps: int
    steps: int
    coordinates: int
    max_queries: Optional[int]
    abort_early: bool
    abort_every: int
    learning_rate: float
    h: float
    box: str
    attack_size: Optional[int]
    double_at: Optional[int]
    double_again_at: Optional[int]
    importance: str
    reset_adam: bool
    coordinate_seed: int
    precision: str


class Problem:
    """The objective of every image: its x₀, class, target, constant c, and how y maps to an image."""

    def __init__(self, x0: Tensor, labels: Tensor, targets: Optional[Tensor], s: Settings, dtype: torch.dtype) -> None:
        self.x0 = x0.to(dtype)
        self.labels, self.targets, self.s = labels, targets, s
        self.shape = tuple(x0.shape[1:])  # (C, H, W)
        if s.box == "tanh":
            self.w0 = torch.atanh((2 * self.x0 - 1) * _TANH_SCALE)
            self.tanh_w0 = torch.tanh(self.w0)

    def images(self, y: Tensor, rows: Tensor) -> Tensor:
        """x for the modifiers ``y`` (R, C, s, s) of images ``rows`` (R,): x₀ + D(y), in the box."""
        _, height, width = self.shape
        if y.shape[-2:] != (height, width):
            y = F.interpolate(y, size=(height, width), mode="bilinear", align_corners=False)  # D(y) of eq. 14
        x0 = self.x0[rows]
        if self.s.box == "tanh":
            return (x0 + (torch.tanh(self.w0[rows] + y) - self.tanh_w0[rows]) / 2).clamp(0.0, 1.0)
        return (x0 + y).clamp(0.0, 1.0)

    def distance(self, x: Tensor, rows: Tensor) -> Tensor:
        """‖x − x₀‖₂² per row, in float64."""
        return (x.double() - self.x0[rows].double()).flatten(1).square().sum(1)

    def loss(self, probs: Tensor, x: Tensor, rows: Tensor, const: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(objective, f, margin, ‖δ‖₂²) per row, in float64: ‖x − x₀‖₂² + c·f(x, t) with f of eq. 10/11."""
        return self.loss_at(probs, self.distance(x, rows), rows, const)

    def loss_at(self, probs: Tensor, l2sq: Tensor, rows: Tensor, const: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scores = torch.log(probs.double() + _LOG_FLOOR)
        margin = logit_margin(scores, self.labels[rows], None if self.targets is None else self.targets[rows])
        f = hinge_loss(margin, self.s.kappa)  # eq. 10 (targeted) / eq. 11 (untargeted) on log F
        return l2sq + const[rows].double() * f, f, margin, l2sq


def _query_rows(problem: Problem, y: Tensor, idx: Tensor, rows: Tensor, h: float, side: tuple[int, int]
                ) -> Callable[[int, int], Tensor]:
    """build(start, stop): rows [start, stop) of the N × (2B + 1) query images, row j of image i being y_i (j = 0),
    y_i + h e_idx[i, j−1] (1 ≤ j ≤ B) or y_i − h e_idx[i, j−B−1] (B < j ≤ 2B), mapped to image space."""
    n, b = idx.shape
    flat = y.flatten(1)
    signs = torch.cat([flat.new_zeros(1), flat.new_full((b,), h), flat.new_full((b,), -h)])

    def build(start: int, stop: int) -> Tensor:
        r = torch.arange(start, stop, device=flat.device)
        i, j = r // (2 * b + 1), r % (2 * b + 1)
        q = flat[i].scatter_add(1, idx[i, (j - 1).remainder(b)][:, None], signs[j][:, None])
        return problem.images(q.view(-1, y.shape[1], *side), rows[i])

    return build


def _sample(u: Tensor, prob: Optional[Tensor], n: int, b: int) -> Tensor:
    """B distinct coordinates per image: the top B of one uniform draw, or ∝ prob by the Gumbel-top-k trick."""
    if prob is None:
        return u.topk(b).indices.expand(n, b)
    keys = torch.log(prob) - torch.log(-torch.log(u.clamp_min(1e-300)))
    return keys.topk(b, dim=1).indices


def _importance(y: Tensor, size: tuple[int, int]) -> Tensor:
    """The sampling probability of §3.2.4: |y| max-pooled per channel over (side/8)² blocks, resized, normalised."""
    k = (max(1, y.shape[-2] // 8), max(1, y.shape[-1] // 8))
    pooled = F.max_pool2d(y.abs(), k, stride=k, ceil_mode=True)
    prob = F.interpolate(pooled, size=size, mode="nearest").flatten(1)
    total = prob.sum(1, keepdim=True)
    return torch.where(total > 0, prob / total.clamp_min(1e-300), torch.full_like(prob, 1.0 / prob.shape[1]))


class _State:
    """Per-image optimiser state over the attack space: y, Adam's M, v and per-coordinate epoch T."""

    def __init__(self, n: int, channels: int, side: tuple[int, int], dtype: torch.dtype, device: torch.device) -> None:
        self.side = side
        self.y = torch.zeros(n, channels, *side, dtype=dtype, device=device)
        self.reset_adam()
        self.prob: Optional[Tensor] = None

    def reset_adam(self, rows: Optional[Tensor] = None) -> None:
        if rows is None:
            flat = self.y.flatten(1)
            self.m, self.v, self.t = torch.zeros_like(flat), torch.zeros_like(flat), torch.ones_like(flat)
        else:
            keep = ~rows[:, None]
            self.m, self.v = self.m * keep, self.v * keep
            self.t = torch.where(keep, self.t, torch.ones_like(self.t))

    def resize(self, side: tuple[int, int], importance: bool) -> None:
        previous = self.y
        self.y = F.interpolate(previous, size=side, mode="bilinear", align_corners=False)
        self.side = side
        self.reset_adam()
        if importance:
            self.prob = _importance(previous, side)


def _step(state: _State, rows: Tensor, idx: Tensor, grad: Tensor, hess: Tensor, s: Settings,
          bounds: Optional[tuple[Tensor, Tensor]]) -> None:
    """One coordinate update of Algorithm 2 / 3 at coordinates ``idx`` (n, B) of images ``rows`` (n,)."""
    r = rows[:, None]
    y = state.y.flatten(1)
    old = y[r, idx]
    lr = s.learning_rate
    if s.solver != "newton":
        m = BETA1 * state.m[r, idx] + (1 - BETA1) * grad
        v = BETA2 * state.v[r, idx] + (1 - BETA2) * grad * grad
        t = state.t[r, idx]
        corr = torch.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        adam = old - lr * corr * m / (torch.sqrt(v) + ADAM_EPS)  # Algorithm 2 as the code has it: ε outside √
        state.m[r, idx], state.v[r, idx], state.t[r, idx] = m, v, t + 1
    if s.solver != "adam":
        curvature = torch.where(hess < 0, torch.ones_like(hess), hess).clamp_min(0.1)  # the code's clamps
        newton = old - lr * grad / curvature  # Algorithm 3: δ* = −η ĝ/ĥ (−η ĝ where ĥ ≤ 0)
    if s.solver == "adam":
        new = adam
    elif s.solver == "newton":
        new = newton
    else:
        new = torch.where(hess >= 0, newton, adam)  # the code's coordinate_Newton_ADAM
    if bounds is not None:
        new = torch.minimum(torch.maximum(new, bounds[0][r, idx]), bounds[1][r, idx])
    y[r, idx] = new.to(y.dtype)


def _run(name: str, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor], s: Settings,
         callback: Optional[Callback], white_box: bool = False) -> AttackResult:
    run = Run.start(name, model, inputs, labels, targets)
    x0, labels, targets, device = run.x0, run.labels, run.targets, run.device
    dtype = torch.float64 if s.precision == "float64" else torch.float32
    n, channels, height, width = x0.shape
    oracle = QueryOracle(model, n, dtype=dtype)
    problem = Problem(x0, labels, targets, s, dtype)
    search = ConstSearch(s.initial_const, n, device)
    best = BestTracker(x0)
    total = s.binary_search_steps * s.steps
    history = torch.full((total, n), math.nan, device=device)
    current = x0.clone()
    shown = {k: torch.zeros(n, device=device) for k in ("f", "l2", "objective")}
    exhausted = [False] * n
    done, stopped = 0, False
    full = (height, width)
    first_side = full if s.attack_size is None else (min(s.attack_size, height), min(s.attack_size, width))
    for binary_step in range(s.binary_search_steps):
        const = search.const
        state = _State(n, channels, first_side, dtype, device)
        found = torch.zeros(n, dtype=torch.bool, device=device)
        stage = torch.zeros(n, dtype=torch.bool, device=device)  # first success for this c seen (Adam reset done)
        previous = [math.inf] * n
        active = [i for i in range(n) if not exhausted[i]]
        generator = torch.Generator().manual_seed(s.coordinate_seed * 1009 + binary_step)
        for k in range(s.steps):
            if k and k in (s.double_at, s.double_again_at) and state.side != full:
                side = (min(2 * state.side[0], height), min(2 * state.side[1], width))
                state.resize(side, importance=s.importance != "off")
            dims = channels * state.side[0] * state.side[1]
            b = min(s.coordinates, dims)
            per_image = 1 if white_box else 2 * b + 1
            if s.max_queries is not None:
                for i in active:
                    if oracle.queries[i] + per_image > s.max_queries:
                        exhausted[i] = True
                active = [i for i in active if not exhausted[i]]
            u = torch.rand(dims, generator=generator, dtype=torch.float64)  # drawn whether or not anyone runs
            if not active:
                break
            rows = torch.tensor(active, device=device)
            na = len(active)
            y = state.y[rows]
            if white_box:
                objective, f, margin, l2sq, x_now = _true_step(model, problem, state, rows, y, const, s)
                for i in active:
                    oracle.queries[i] += 1  # one gradient evaluation
            else:
                prob = None
                if s.importance != "off" and state.side != first_side:  # the code: only once the space has grown
                    if s.importance == "every-iteration":
                        state.prob = _importance(state.y, state.side)
                    prob = state.prob
                idx = _sample(u.to(device, dtype), None if prob is None else prob[rows], na, b)
                per = 2 * b + 1
                owner = rows.repeat_interleave(per)
                build = _query_rows(problem, y, idx, rows, s.h, state.side)  # a chunk of the N × (2B+1) at a time
                probs, dist = oracle.probabilities_of(build, na * per, channels * height * width, active, per,
                                                      measure=lambda x, a, z: problem.distance(x, owner[a:z]))
                assert dist is not None
                loss, f, margin, l2sq = (t.view(na, per) for t in problem.loss_at(probs, dist, owner, const))
                plus, minus, centre = loss[:, 1:b + 1], loss[:, b + 1:], loss[:, :1]
                grad = (plus - minus) / (2 * s.h)  # eq. 12
                hess = (plus - 2 * centre + minus) / (s.h * s.h)  # eq. 13
                _step(state, rows, idx, grad.to(dtype), hess.to(dtype), s, _box(problem, state, s))
                objective, f, margin, l2sq = loss[:, 0], f[:, 0], margin[:, 0], l2sq[:, 0]
                x_now = problem.images(y, rows)  # query row 0 of each image: y itself
            success = is_adversarial(margin, s.kappa)
            if s.reset_adam:
                first = success & ~stage[rows]
                mask = torch.zeros(n, dtype=torch.bool, device=device).index_put((rows,), first)
                state.reset_adam(mask)  # §3.3.3: stale moments keep pushing f down instead of ‖δ‖₂
            stage[rows] |= success
            found[rows] |= success
            success_all = torch.zeros(n, dtype=torch.bool, device=device).index_put((rows,), success)
            distance = torch.full((n,), math.inf, device=device).index_put((rows,), l2sq.float())
            current[rows] = x_now.float()
            best.update(current, distance, success_all, const)
            history[done, rows] = objective.float()
            for key, value in (("f", f), ("l2", l2sq.sqrt()), ("objective", objective)):
                shown[key][rows] = value.float()
            done += 1
            # The query counts live on the host (the oracle counts there), so reading them never syncs.
            if stops(callback, lambda: IterationState(
                    attack=name, iteration=done, total_iterations=total, binary_step=binary_step, step=k,
                    current=current, losses=dict(shown), success=success_all, best=best.adversarial,
                    best_found=best.found, const=const, extra={"queries": oracle.counts()})):
                stopped = True
                break
            if s.abort_early and k % s.abort_every == 0:  # iterations 0, a, 2a, …: the code's early stop
                values = objective.tolist()
                keep = []
                for i, value in zip(active, values):
                    if value > 0.9999 * previous[i]:
                        continue
                    previous[i] = value
                    keep.append(i)
                active = keep
        if stopped:
            break
        search.update(found)

    params = {field: getattr(s, field) for field in Settings.__dataclass_fields__}
    params["queries"] = oracle.counts()
    return run.result(best.adversarial, best.found, torch.where(best.found, best.const, const), history, done,
                      stopped, params)


def _box(problem: Problem, state: _State, s: Settings) -> Optional[tuple[Tensor, Tensor]]:
    """Projection bounds on y: [−x₀, 1 − x₀] at full size; [−1, 1] on a reduced space (x is clipped after D)."""
    if s.box != "projection":
        return None
    if state.side == tuple(problem.shape[1:]):
        return -problem.x0.flatten(1), (1 - problem.x0).flatten(1)
    ones = torch.ones_like(state.y.flatten(1))
    return -ones, ones


def _true_step(model: PixelModel, problem: Problem, state: _State, rows: Tensor, y: Tensor, const: Tensor,
               s: Settings) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The white-box check (the code's ``fake_zero``): the same objective, its true gradient by autograd through
    the model (not the oracle), and Adam on every coordinate."""
    y = y.detach().requires_grad_(True)
    x = problem.images(y, rows)
    with no_tf32() if model.device.type == "cuda" else contextlib.nullcontext():
        probs = _model_as(model, problem.x0.dtype)(x.to(problem.x0.dtype)).softmax(1)
    objective, f, margin, l2sq = problem.loss(probs, x, rows, const)
    (grad,) = torch.autograd.grad(objective.sum(), y)
    flat = grad.flatten(1)
    idx = torch.arange(flat.shape[1], device=flat.device).expand(flat.shape[0], -1)
    _step(state, rows, idx, flat.to(state.y.dtype), torch.zeros_like(flat), s, _box(problem, state, s))
    return objective.detach(), f.detach(), margin.detach(), l2sq.detach(), x.detach()


_MODELS: dict[tuple[int, torch.dtype], PixelModel] = {}


def _model_as(model: PixelModel, dtype: torch.dtype) -> PixelModel:
    if dtype == torch.float32:
        return model
    key = (id(model), dtype)
    if key not in _MODELS:
        _MODELS[key] = copy.deepcopy(model).to(dtype)
    return _MODELS[key]


def estimate_gradient(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor], modifier: Tensor,
                      coordinates: Tensor, *, const: float = 1.0, kappa: float = 0.0, h: float = 1e-4,
                      box: str = "projection", precision: str = "float64") -> tuple[Tensor, Tensor]:
    """(ĝ by eq. 12 through the oracle, ∇ by autograd) of the ZOO objective at ``modifier`` (N, C, s, s), at
    ``coordinates`` (N, B): the check that the estimate is the gradient."""
    s = _settings(dict(kappa=kappa, h=h, box=box, precision=precision, initial_const=const))
    dtype = torch.float64 if precision == "float64" else torch.float32
    n = inputs.shape[0]
    problem = Problem(inputs.to(model.device), labels.to(model.device),
                      None if targets is None else targets.to(model.device), s, dtype)
    c = torch.full((n,), float(const), device=model.device)
    rows = torch.arange(n, device=model.device)
    y = modifier.to(model.device, dtype)
    b = coordinates.shape[1]
    queries = y.flatten(1)[:, None, :].repeat(1, 2 * b + 1, 1)
    step = torch.full((n, b, 1), h, dtype=dtype, device=model.device)
    idx = coordinates.to(model.device)
    queries[:, 1:b + 1].scatter_add_(2, idx[:, :, None], step)
    queries[:, b + 1:].scatter_add_(2, idx[:, :, None], -step)
    owner = rows.repeat_interleave(2 * b + 1)
    x = problem.images(queries.view(-1, *y.shape[1:]), owner)
    oracle = QueryOracle(model, n, dtype=dtype)
    loss = problem.loss(oracle.probabilities(x, list(range(n)), 2 * b + 1), x, owner, c)[0].view(n, 2 * b + 1)
    estimate = (loss[:, 1:b + 1] - loss[:, b + 1:]) / (2 * h)  # eq. 12
    w = y.detach().requires_grad_(True)
    xw = problem.images(w, rows)
    objective = problem.loss(_model_as(model, dtype)(xw).softmax(1), xw, rows, c)[0]
    (true,) = torch.autograd.grad(objective.sum(), w)
    return estimate, true.flatten(1).gather(1, idx).double()


def _settings(values: dict) -> Settings:
    """The settings named in ``values`` (other keys ignored), the schema's defaults for the rest."""
    return Settings(**{p.name: values.get(p.name, p.default) for p in PARAMS})


@declare(*PARAMS)
def zoo(
    model: PixelModel,
    inputs: Tensor,
    labels: Tensor,
    targets: Optional[Tensor] = None,
    *,
    solver: Solver = "adam",
    kappa: float = 0.0,
    initial_const: float = 1e-2,
    binary_search_steps: int = 9,
    steps: int = 3000,
    coordinates: int = 128,
    max_queries: Optional[int] = None,
    abort_early: bool = True,
    abort_every: int = 100,
    learning_rate: float = 1e-2,
    h: float = 1e-4,
    box: str = "projection",
    attack_size: Optional[int] = None,
    double_at: Optional[int] = None,
    double_again_at: Optional[int] = None,
    importance: str = "at-resize",
    reset_adam: bool = False,
    coordinate_seed: int = 0,
    precision: str = "float32",
    callback: Optional[Callback] = None,
) -> AttackResult:
    """ZOO: min ‖D(y)‖₂² + c·f(x₀ + D(y), t) by zeroth-order stochastic coordinate descent, querying probabilities only.

    ``result.params["queries"]`` holds the images each sample had the model evaluate (2B + 1 per iteration it ran).
    """
    s = _settings(locals())  # the keyword arguments above, by name
    return _run("zoo", model, inputs, labels, targets, s, callback)


def zoo_white_box(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
                  callback: Optional[Callback] = None, **params: object) -> AttackResult:
    """The white-box check mode (the original's ``fake_zero``): ZOO's objective with its true gradient, Adam on every
    coordinate. ``params`` are :func:`zoo`'s (``solver`` is always Adam). Not a black-box attack and not registered;
    ``queries`` counts gradient evaluations."""
    callback = check_callback(callback)
    values = check_params(PARAMS, params, "zoo_white_box")
    inputs, labels, targets = check_call(model, inputs, labels, targets)  # in @declare's order
    s = _settings({**values, "solver": "adam"})
    return _run("zoo-white-box", model, inputs, labels, targets, s, callback, white_box=True)
