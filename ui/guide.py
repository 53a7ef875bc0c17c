"""Beside a result panel, folded: "How to read this" for a first-time reader. Every text lives here, checked
against the seeds (StrAttack eqs. 1–2, 23 and 61, Fig. 3–4, Appendix F) and the code that draws the panel."""

from __future__ import annotations

import streamlit as st

from ui.state import Run

TEXTS: dict[str, str] = {
    "delta": (
        "**δ = x_adv − x₀**, the change the attack made to each pixel on the [0, 1] intensity scale. **Red**: "
        "brighter than the original, **blue**: darker, **white**: unchanged. The colour scale is symmetric around 0 "
        "and ends at the largest |δ| of the panel (read the colour bar), so one colour in two runs need not mean "
        "one amount; Compare can put each row on one range.\n\n"
        "**Pale is not zero**: a change of 0.001 looks white, yet ℓ0 counts it. On an MNIST digit the background "
        "is exactly 0, so it can only turn red, while the strokes, up to 1, have less room to. A colour image shows "
        "|δ| summed over R, G and B by default (how much, not which way, in the colour map); pick R, G or B under "
        "δ view for that channel's signed change."
    ),
    "groups": (
        "The image is cut into r × r windows G moved by a stride S (StrAttack §2; 2 × 2 on images up to 32 px, "
        "13 × 13 on larger ones, Appendix F; the caption gives this run's). Each window is painted with ‖δ_G‖₂, "
        "the ℓ2 norm of δ over its pixels and channels. A **clear** window has δ exactly 0 on every pixel in it; "
        "\"k of n groups touched\" counts the windows with ‖δ_G‖₂ > 0, however small.\n\n"
        "StrAttack adds τ·Σ‖δ_G‖₂ to its objective (the group-sparsity term g(δ), eqs. 1–2), which pushes whole "
        "windows to exactly zero. EAD's ℓ1 term zeroes single pixels, not windows. C&W's objective has no term "
        "that zeroes anything: its clear windows on a digit are background the [0, 1] box holds at 0."
    ),
    "asm": (
        "**ASM(x₀, t)** (StrAttack eq. 61) scores each pixel of the *clean* image by two gradients: "
        "(∂Z_t/∂xᵢ)·|∂Z_t₀/∂xᵢ| where raising the pixel raises the target's logit Z_t *and* lowers the true "
        "class's Z_t₀, and 0 wherever either sign is wrong (most pixels, drawn clear). Bright: to first order, "
        "brightening this pixel helps the attack most. So the ASM only credits *brightening* (a pixel that helps "
        "when darkened scores 0), and it describes x₀, not the path the attack took. t is the target; for an "
        "untargeted attack, the class the adversarial image got.\n\n"
        "**B_ASM**, the cyan outline, holds the pixels whose ASM is above its ν-th percentile, taken over the "
        "non-zero scores (as the public GSE code does): at ν = 90, the top 10 % of the pixels that score at all. "
        "Move ν to grow or shrink it. IS-ASM is the share of ‖δ‖₂ inside the outline."
    ),
    "asm_delta": (
        "|δ| (summed over channels) over the image, with the cyan outline of **B_ASM** at ν: the pixels whose "
        "adversarial saliency ASM(x₀, t) (StrAttack eq. 61) is above its ν-th percentile among the non-zero "
        "scores. The ASM is high where brightening a pixel raises the target's logit and lowers the true class's. "
        "IS-ASM, under the panel, is the share of ‖δ‖₂ inside the outline."
    ),
    "cam": (
        "Grad-CAM **C(x, c)** shows where, in the model's last convolutional features, the evidence for class c "
        "sits in image x: ReLU(Σₖ wₖAₖ), wₖ the mean gradient of the logit Z_c over feature map Aₖ, upsampled to "
        "the image. It is coarse by construction: the MNIST CNN's last features are 8 × 8 and each cell sees a "
        "14 × 14-pixel window, so a few changed pixels light up a blob around them (EfficientNet-Lite0: 7 × 7 "
        "cells, 32 px apart). All four maps share one colour range, so a change of colour is a change of "
        "evidence.\n\n"
        "Read it as StrAttack's Fig. 4: C(x_adv, t₀) against C(x₀, t₀) shows how far the true class was "
        "suppressed, C(x_adv, t) against C(x₀, t) how far the target was promoted.\n\n"
        "**Why C(x_adv, t) often looks weak.** The attack only needs Z_t to lead every other logit by κ (0 by "
        "default), and the decision rule keeps the least-distorted success, so x_adv sits just past the decision "
        "boundary: the target wins by a hair, not as a confident new digit (the top-5 panel shows how close the "
        "runner-up still is). Grad-CAM's weights are gradients at "
        "x_adv and its ReLU drops negative evidence, so the target's map can be faint, even fainter than "
        "C(x₀, t)."
    ),
    "is": (
        "**IS = ‖B ∘ δ‖₂ / ‖δ‖₂** (StrAttack eq. 23): the share of the perturbation's ℓ2 energy inside a region B. "
        "IS-ASM takes B = B_ASM (the outline on the ASM panel); IS-CAM takes B = the top (100 − ν) % of the pixels "
        "of C(x₀, t₀), where the model sees the true class. **1**: all of δ lies in B, so the map accounts for "
        "where the attack acts; **0**: none of it does; **–**: δ = 0 (the attack failed). Raising ν shrinks B, so "
        "IS can only fall or stay.\n\n"
        "**What is a good IS?** Compare it with chance: a δ spread evenly over the image scores √(share of the "
        "image inside B), small when B is small. For reference, the paper "
        "reports IS-CAM averaged over 500 ImageNet images of 0.65 for C&W and 0.77 for StrAttack, and IS-ASM for "
        "ν from 30 to 90 (Fig. 3a) with StrAttack above C&W, by a margin the authors call not significant."
    ),
    "is_curve": (
        "Each line is one attack's IS-ASM as B_ASM shrinks from the top 70 % (ν = 30) to the top 10 % (ν = 90) "
        "of the non-zero ASM scores, as in StrAttack's Fig. 3(a). Every curve falls or stays flat as ν rises, "
        "because a smaller B can only hold less of δ. A higher curve: more of that attack's perturbation sits on "
        "the pixels the ASM ranks highest. The dotted line marks the ν of the slider above."
    ),
}


def how_to_read(*topics: str, label: str = "How to read this", extra: str = "") -> None:
    """A folded expander with the texts of ``topics`` (and ``extra``, e.g. this result's numbers)."""
    with st.expander(label, icon=":material/help:"):
        st.markdown("\n\n".join([TEXTS[t] for t in topics] + ([extra] if extra else [])))


def chance_lines(run: Run, nu: float) -> str:
    """This result's IS beside what a δ spread evenly over the image would score: √(share of the image in B)."""
    from ui.analysis import is_at, scores_at

    scores = scores_at(run, nu)
    if scores is None:
        return ""
    from interpret.scores import percentile_mask

    is_asm, is_cam = is_at(run, nu)
    rows = [("IS-ASM", "B_ASM", float(scores["mask"][0].double().mean()), is_asm)]
    if "x0_t0" in scores["cams"]:
        cam_region = percentile_mask(scores["cams"]["x0_t0"], nu, nonzero_only=False)[0]
        rows.append(("IS-CAM", "the CAM region", float(cam_region.double().mean()), is_cam))
    lines = [f"- {name}: {region} holds {share:.1%} of the image, so an even δ would score {share ** 0.5:.2f}; "
             f"this δ scores {'–' if value is None else f'{value:.2f}'}." for name, region, share, value in rows]
    return f"**This result at ν = {nu:g}:**\n" + "\n".join(lines)
