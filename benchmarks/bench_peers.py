"""advlens against foolbox 3, torchattacks and ART: the same model, images, targets and settings, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_peers.py [--n 10] [--binary-steps 5] [--steps 200] [--beta 1e-3]
        [--kappa 0] [--initial-const 1e-2] [--lr 1e-2] [--only advlens foolbox ...] [--write]

The model is the bundled MNIST network (``mnist-cnn``); the images are the held-out digits ``mnist:0`` …
``mnist:{n-1}``; each is attacked towards (label + 1) mod 10. EAD runs with the EN decision rule, and no library
aborts early where it can be told not to. Every returned image is judged the same way, whatever the library says
about it: a success is an image in [0, 1] that the model classifies as the target. Distortions are means over
those successes (``interpret.metrics.distortion``).

Prints a markdown section; ``--write`` also puts it into BENCHMARKS.md under "## Peer libraries", replacing only
that section. The peers are the optional ``peers`` extra (``uv sync --extra peers``); a missing one is skipped.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks import cw_l2, ead
from benchmarks.sections import BENCHMARKS_MD, environment_line, replace_section
from interpret.metrics import distortion

HEADING = "## Peer libraries"


@dataclass(frozen=True)
class Settings:
    binary_search_steps: int
    steps: int
    beta: float
    kappa: float
    initial_const: float
    learning_rate: float
    torchattacks_cw_c: float

    def tiny(self) -> Settings:
        """A two-iteration run of the same code paths, to warm up before timing."""
        return Settings(1, 2, self.beta, self.kappa, self.initial_const, self.learning_rate, self.torchattacks_cw_c)


@dataclass(frozen=True)
class Runner:
    attack: str  # "EAD" or "C&W L2": the advlens attack this row is compared with
    library: str
    name: str  # the class or function called
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Settings], torch.Tensor]
    iterations: Callable[[Settings], int]  # the iteration budget it was given (for the per-iteration column)


# --- the runners: each returns the adversarial images as a CPU float tensor (N, C, H, W) ---------------------------

def _advlens_runners(model) -> list[Runner]:
    def run_ead(x, labels, targets, s: Settings):
        return ead(model, x, labels, targets, beta=s.beta, kappa=s.kappa, initial_const=s.initial_const,
                   binary_search_steps=s.binary_search_steps, steps=s.steps, learning_rate=s.learning_rate,
                   decision_rule="en", abort_early=False).adversarial

    def run_cw(x, labels, targets, s: Settings):
        return cw_l2(model, x, labels, targets, kappa=s.kappa, initial_const=s.initial_const,
                     binary_search_steps=s.binary_search_steps, steps=s.steps, learning_rate=s.learning_rate,
                     abort_early=False).adversarial

    budget = lambda s: s.binary_search_steps * s.steps
    return [Runner("EAD", "advlens", "attacks.ead", run_ead, budget),
            Runner("C&W L2", "advlens", "attacks.cw_l2", run_cw, budget)]


def _foolbox_runners(net) -> list[Runner]:
    import foolbox as fb

    fmodel = fb.PyTorchModel(net, bounds=(0, 1))

    def run_ead(x, labels, targets, s: Settings):
        attack = fb.attacks.EADAttack(binary_search_steps=s.binary_search_steps, steps=s.steps,
                                      initial_stepsize=s.learning_rate, confidence=s.kappa,
                                      initial_const=s.initial_const, regularization=s.beta, decision_rule="EN",
                                      abort_early=False)
        raw, _, _ = attack(fmodel, x, fb.criteria.TargetedMisclassification(targets), epsilons=None)
        return raw

    def run_cw(x, labels, targets, s: Settings):
        attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=s.binary_search_steps, steps=s.steps,
                                                  stepsize=s.learning_rate, confidence=s.kappa,
                                                  initial_const=s.initial_const, abort_early=False)
        raw, _, _ = attack(fmodel, x, fb.criteria.TargetedMisclassification(targets), epsilons=None)
        return raw

    budget = lambda s: s.binary_search_steps * s.steps
    return [Runner("EAD", "foolbox", "EADAttack", run_ead, budget),
            Runner("C&W L2", "foolbox", "L2CarliniWagnerAttack", run_cw, budget)]


def _torchattacks_runners(net) -> list[Runner]:
    import torchattacks

    def run_ead(x, labels, targets, s: Settings):
        attack = torchattacks.EADEN(net, kappa=s.kappa, lr=s.learning_rate,
                                    binary_search_steps=s.binary_search_steps, max_iterations=s.steps,
                                    abort_early=False, initial_const=s.initial_const, beta=s.beta)
        attack.set_mode_targeted_by_label(quiet=True)
        return attack(x, targets)

    def run_cw(x, labels, targets, s: Settings):
        # No binary search over c: one c for every sample, and the whole iteration budget in one run.
        attack = torchattacks.CW(net, c=s.torchattacks_cw_c, kappa=s.kappa,
                                 steps=s.binary_search_steps * s.steps, lr=s.learning_rate)
        attack.set_mode_targeted_by_label(quiet=True)
        return attack(x, targets)

    return [Runner("EAD", "torchattacks", "EADEN", run_ead, lambda s: s.binary_search_steps * s.steps),
            Runner("C&W L2", "torchattacks", "CW", run_cw, lambda s: s.binary_search_steps * s.steps)]


def _art_runners(net, x_shape: tuple[int, ...], num_classes: int) -> list[Runner]:
    from art.attacks.evasion import CarliniL2Method, ElasticNet
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=x_shape,
                                   nb_classes=num_classes, clip_values=(0.0, 1.0), device_type="cpu")

    def run_ead(x, labels, targets, s: Settings):
        attack = ElasticNet(classifier, confidence=s.kappa, targeted=True, learning_rate=s.learning_rate,
                            binary_search_steps=s.binary_search_steps, max_iter=s.steps, beta=s.beta,
                            initial_const=s.initial_const, batch_size=len(x), decision_rule="EN", verbose=False)
        return torch.from_numpy(attack.generate(x.numpy(), y=targets.numpy()))

    def run_cw(x, labels, targets, s: Settings):
        attack = CarliniL2Method(classifier, confidence=s.kappa, targeted=True, learning_rate=s.learning_rate,
                                 binary_search_steps=s.binary_search_steps, max_iter=s.steps,
                                 initial_const=s.initial_const, batch_size=len(x), verbose=False)
        return torch.from_numpy(attack.generate(x.numpy(), y=targets.numpy()))

    budget = lambda s: s.binary_search_steps * s.steps
    return [Runner("EAD", "ART", "ElasticNet", run_ead, budget),
            Runner("C&W L2", "ART", "CarliniL2Method", run_cw, budget)]


# --- measuring -----------------------------------------------------------------------------------------------------

def fwd_bwd_seconds(model, x: torch.Tensor, passes: int = 1000) -> float:
    """Wall time of ``passes`` forward passes plus the backward pass to the input, on the same batch."""
    for _ in range(10):  # warm-up
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(model(xr).sum(), xr)
    start = time.perf_counter()
    for _ in range(passes):
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(model(xr).sum(), xr)
    return time.perf_counter() - start


def judge(model, x: torch.Tensor, adversarial: torch.Tensor, targets: torch.Tensor) -> dict:
    """The same test for every library: in [0, 1] and classified as the target. Means over successes."""
    adversarial = adversarial.detach().to("cpu", torch.float32)
    in_box = (adversarial >= 0).flatten(1).all(1) & (adversarial <= 1).flatten(1).all(1)
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    reached = predicted == targets
    success = in_box & reached
    d = distortion(adversarial - x)
    mean = {k: (d[k][success].float().mean().item() if bool(success.any()) else float("nan"))
            for k in ("l1", "l2", "linf")}
    # Where images leave the box, say by how much and what the row would read without the box test.
    excess = torch.maximum(-adversarial.flatten(1).amin(1), adversarial.flatten(1).amax(1) - 1).clamp(min=0)
    outside = {"out_of_box": int((~in_box).sum()), "excess": excess.max().item(), "reached": int(reached.sum()),
               "reached_l1": d["l1"][reached].mean().item() if bool(reached.any()) else float("nan"),
               "reached_l2": d["l2"][reached].mean().item() if bool(reached.any()) else float("nan")}
    # foolbox marks a failure by returning an all-zero image; the common test judges it like any other image.
    blank = (adversarial.flatten(1).abs().amax(1) == 0) & (x.flatten(1).abs().amax(1) > 0)
    return {"success": success, "asr": 100.0 * success.float().mean().item(), **mean, **outside,
            "blank": int(blank.sum()), "blank_success": int((blank & success).sum())}


def run_timed(runner: Runner, x, labels, targets, settings: Settings, repeats: int) -> tuple[torch.Tensor, float]:
    runner.run(x.clone(), labels.clone(), targets.clone(), settings.tiny())  # warm-up, not timed
    best, adversarial = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        adversarial = runner.run(x.clone(), labels.clone(), targets.clone(), settings)
        best = min(best, time.perf_counter() - start)
    return adversarial, best


# --- the report ----------------------------------------------------------------------------------------------------

CAVEATS = """\
Where a peer cannot be given the same setting, or does something else on its own:

- **torchattacks `CW`** has no binary search over c (its docstring: "NOT IMPLEMENTED"). It runs once, with one
  c for every sample (`--torchattacks-cw-c`, default {ta_c:g}, its own default; the others start at c = {c0:g}
  and search per sample), for the whole budget of {budget} iterations. Its early stop cannot be switched off:
  it returns as soon as the batch's summed cost has risen at one of its ten checkpoints. Its inverse tanh maps
  pixels at exactly 0 or 1 to ±∞, where the gradient is 0, so those pixels can never move; on MNIST, where
  most pixels are exactly 0, it can only change the strokes.
- **ART `CarliniL2Method`** is not the paper's Adam: it does a gradient step with a line search (up to 5
  halvings and 5 doublings of the step, ART's defaults, each one more forward pass), and `learning_rate` is only
  the step the search starts from. Its iterations are therefore not comparable one for one. It has no early
  abort. Without Adam's per-coordinate scaling, a pixel at 0 or 1 (w = atanh(±0.999999)) gets its gradient
  multiplied by 1 − tanh²(w) ≈ 2·10⁻⁶ and practically cannot move, so on MNIST it too changes little but the
  strokes at this learning rate.
- **ART** processes `batch_size` samples at a time, 1 by default: it is set to the whole batch here
  ({n}). `ElasticNet` takes two class gradients per iteration, each one backward pass per distinct class in
  the batch, and a third forward pass to judge x(k). It zeroes the whole gradient, the ‖δ‖₂² term included,
  of every sample whose hinge is inactive (already adversarial): such a sample is pulled back towards x₀ by
  the shrinkage S_β alone (β per coordinate), without the 2α(x − x₀) step of eq. (7)'s gradient, so it
  follows a different path from the exact update (slower back towards x₀ once adversarial). Whichever way
  that moves its ℓ₁ on a given network, it is a different iteration, not a better solver of eq. (7).
- **foolbox** is given `abort_early=False` (its default aborts; its check looks at the loss without the ℓ₁
  term). With ≥ 10 binary steps it repeats the last step at c = min(upper bound, 1e10); with {bs} steps it
  does not. It returns an all-zero (black) image where it failed; the common test below judges that image
  like any other.
- **torchattacks `EADEN`** is given `abort_early=False`. It does not reset x(k), y(k) between values of c
  (it warm-starts each c from the last iterate). `y_k = nn.Parameter(images)` shares storage with its copy
  of the originals, so its first gradient step moves the reference x₀ itself, unclipped; every pixel the
  shrinkage leaves "unchanged" then comes back at that moved value, slightly outside [0, 1] (see the note
  under the table). With κ > 0 its success test adds κ to every row's columns for all labels of the batch
  (κ = {kappa:g} here). Its hinge takes the target logit as max(onehot·Z) = max(Z_t, 0), so it stops pushing
  once all other logits are below 0 even where Z_t is lower still (`CW` has the same `f`).
- Every library's own success flag is ignored: a row's success is the model's argmax on the returned image
  equal to the target, with the image in [0, 1]. Distortions are means over those successes only.
- Peers that call `.backward()` (torchattacks, ART) also compute gradients of the network's weights, which
  are left trainable as a user would have them; advlens and foolbox take the gradient to the input only.
"""


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:.{digits}f}"  # NaN: no success to average over


def build_section(rows: list[dict], *, command: str, settings: Settings, n: int, fb_seconds: float,
                  load_before: tuple, load_after: tuple, skipped: list[str], repeats: int = 1) -> str:
    s = settings
    per_fb = fb_seconds / 1000
    lines = [
        HEADING,
        "",
        f"`{command}` — {datetime.date.today().isoformat()}. {environment_line()}.",
        f"Load average (1 min) {load_before[0]:.1f} before the run and {load_after[0]:.1f} after, this run's own "
        f"{torch.get_num_threads()} thread(s) included: "
        + ("other jobs shared the cores, so wall times are noisy; compare ratios within this one run."
           if load_after[0] > (os.cpu_count() or 1) + 0.5 else "nothing else was running."),
        "",
        f"Model `mnist-cnn` (the bundled Carlini–Wagner MNIST network, no normalisation), the held-out digits "
        f"`mnist:0` … `mnist:{n - 1}` in one batch, targets (label + 1) mod 10. Settings for every library: "
        f"{s.binary_search_steps} binary-search steps × {s.steps} iterations, β = {s.beta:g}, κ = {s.kappa:g}, "
        f"initial c = {s.initial_const:g}, learning rate {s.learning_rate:g}, EN decision rule, no early abort "
        f"(exceptions below). Each attack is warmed up with a two-iteration run, then timed "
        + ("once." if repeats == 1 else f"{repeats} times, keeping the least."),
        "",
        f"For scale: 1000 forward+backward passes of this batch (gradient to the input) take {fb_seconds:.2f} s "
        f"({per_fb * 1e3:.2f} ms each).",
        "",
        "| attack | library | called | wall (s) | ÷ advlens | fwd+bwd before (ms) | per iteration ÷ fwd+bwd | success "
        "| mean ℓ1 | mean ℓ2 | mean ℓ∞ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["attack"]: r["seconds"] for r in rows if r["library"] == "advlens"}
    for r in rows:
        ratio = r["seconds"] / base[r["attack"]] if r["attack"] in base else float("nan")
        per_iteration = r["seconds"] / r["iterations"] / r["fb"]
        lines.append(
            f"| {r['attack']} | {r['library']} | `{r['name']}` | {r['seconds']:.1f} | {fmt(ratio)} | "
            f"{r['fb'] * 1e3:.1f} | "
            f"{per_iteration:.2f} | {r['asr']:.0f}% ({r['count']}/{n}) | {fmt(r['l1'])} | {fmt(r['l2'])} | "
            f"{fmt(r['linf'], 3)} |"
        )
    for r in rows:
        if r["out_of_box"]:
            lines += ["", f"{r['library']} `{r['name']}` returned {r['out_of_box']} image(s) outside [0, 1] "
                      f"(by up to {r['excess']:.1e}), which the common test counts as failures. Ignoring the box, "
                      f"{r['reached']}/{n} reach the target, mean ℓ1 {fmt(r['reached_l1'])}, mean ℓ2 "
                      f"{fmt(r['reached_l2'])}."]
        if r["blank"]:
            counted = (f"{r['blank_success']} of them the model classifies as the target, so the common test "
                       f"counts them as successes, with their (large) distortion" if r["blank_success"]
                       else "none of them is classified as the target")
            lines += ["", f"{r['library']} `{r['name']}` returned {r['blank']} all-zero image(s), its mark of a "
                      f"failure; {counted}."]
    lines += [
        "",
        "÷ advlens is the library's wall time over advlens's for the same attack (above 1: advlens is faster). "
        "Per iteration ÷ fwd+bwd is the wall time over the iteration budget (binary steps × iterations, "
        "whether or not a library stops sooner), in units of one forward+backward pass timed (200 passes) just "
        "before that row, so that a change of load during the run affects both; an EAD iteration also judges "
        "x(k) with one more forward pass.",
        "",
        CAVEATS.format(ta_c=s.torchattacks_cw_c, c0=s.initial_const, budget=s.binary_search_steps * s.steps,
                       n=n, bs=s.binary_search_steps, kappa=s.kappa),
    ]
    if skipped:
        lines += [f"Not run (not installed): {', '.join(skipped)}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="held-out digits mnist:0 … mnist:n-1 (default 10)")
    parser.add_argument("--binary-steps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="iterations per binary-search step")
    parser.add_argument("--beta", type=float, default=1e-3)
    parser.add_argument("--kappa", type=float, default=0.0)
    parser.add_argument("--initial-const", type=float, default=1e-2)
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate / initial step size")
    parser.add_argument("--torchattacks-cw-c", type=float, default=1.0,
                        help="the single c for torchattacks' CW, which has no binary search (default 1, its own)")
    parser.add_argument("--only", nargs="+", metavar="LIBRARY",
                        choices=["advlens", "foolbox", "torchattacks", "ART"], help="run only these libraries")
    parser.add_argument("--attacks", nargs="+", choices=["EAD", "C&W L2"], default=["EAD", "C&W L2"])
    parser.add_argument("--repeats", type=int, default=1, help="time each attack this many times, keep the least")
    parser.add_argument("--write", action="store_true", help=f"also write the section into {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_peers.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " + command
    settings = Settings(args.binary_steps, args.steps, args.beta, args.kappa, args.initial_const, args.lr,
                        args.torchattacks_cw_c)

    torch.manual_seed(0)
    spec = get_spec("mnist-cnn")
    model = load_model("mnist-cnn")
    if not (bool((model.mean == 0).all()) and bool((model.std == 1).all())):
        raise SystemExit("mnist-cnn is expected to have no normalisation; the peers get the raw network.")
    net = model.net  # what the peers attack: the same weights, [0,1] in, logits out
    images = [load_image(f"mnist:{i}", spec) for i in range(args.n)]
    x = torch.cat([im.tensor for im in images]).float()
    labels = torch.tensor([im.label for im in images])
    targets = (labels + 1) % spec.num_classes

    load_before = os.getloadavg()
    runners, skipped = [], []
    factories = {
        "advlens": lambda: _advlens_runners(model),
        "foolbox": lambda: _foolbox_runners(net),
        "torchattacks": lambda: _torchattacks_runners(net),
        "ART": lambda: _art_runners(net, tuple(x.shape[1:]), spec.num_classes),
    }
    for library, factory in factories.items():
        if args.only and library not in args.only and library != "advlens":
            continue
        try:
            runners += factory()
        except ImportError:
            skipped.append(library)
    fb_seconds = fwd_bwd_seconds(model, x)
    print(f"1000 fwd+bwd: {fb_seconds:.2f} s (torch threads {torch.get_num_threads()})", file=sys.stderr)

    rows = []
    for attack in args.attacks:
        for runner in (r for r in runners if r.attack == attack):
            # The load of a shared machine drifts over a long run: each row's per-iteration ratio uses a
            # forward+backward time measured just before it.
            local = fwd_bwd_seconds(model, x, passes=200) / 200
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                adversarial, seconds = run_timed(runner, x, labels, targets, settings, args.repeats)
            verdict = judge(model, x, adversarial, targets)
            rows.append(dict(attack=attack, library=runner.library, name=runner.name, seconds=seconds, fb=local,
                             iterations=runner.iterations(settings), count=int(verdict["success"].sum()),
                             **{k: v for k, v in verdict.items() if k != "success"}))
            print(f"{attack:7s} {runner.library:13s} {seconds:7.1f} s  {verdict['asr']:5.0f}%  "
                  f"l1 {fmt(verdict['l1'])}  l2 {fmt(verdict['l2'])}  linf {fmt(verdict['linf'], 3)}",
                  file=sys.stderr, flush=True)
    section = build_section(rows, command=command, settings=settings, n=args.n, fb_seconds=fb_seconds,
                            load_before=load_before, load_after=os.getloadavg(), skipped=skipped,
                            repeats=args.repeats)
    print(section)
    if args.write:
        old = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else ""
        BENCHMARKS_MD.write_text(replace_section(old, HEADING, section), encoding="utf-8")
        print(f"wrote the '{HEADING}' section of {BENCHMARKS_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()
