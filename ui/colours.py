"""How attacks and classes look: each registered attack's colour (by registry order, so a new attack gets one)
and short label, the true, target and other classes' colours, line styles for series, and the colour maps
offered for magnitude maps."""

from __future__ import annotations

TRUE_COLOUR, TARGET_COLOUR, OTHER_COLOUR = "#2e7d32", "#c62828", "#9e9e9e"
CLASS_COLOURS = (TRUE_COLOUR, TARGET_COLOUR, OTHER_COLOUR)
# tab10, reordered so the first five registered attacks keep their colours: C&W blue, EAD red, ISTA orange, ...
PALETTE = ("#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")
DASHES = ("solid", "dash", "dot", "dashdot")
CMAPS = ("inferno", "viridis", "magma", "cividis", "turbo", "jet", "hot")


def attack_colour(name: str) -> str:
    """The colour of a registered attack (grey for a name the registry does not know)."""
    from attacks.registry import ATTACKS

    names = list(ATTACKS)
    return PALETTE[names.index(name) % len(PALETTE)] if name in names else OTHER_COLOUR


def short_label(name: str) -> str:
    """A registered attack's short name: its title without the part in brackets, unless another attack's title
    starts the same, then joined by a hyphen: "COV (tanh + Adam)" → "COV", "EAD (FISTA)" → "EAD-FISTA"."""
    from attacks.registry import ATTACKS

    head, _, rest = ATTACKS[name].title.partition(" (")
    same = sum(e.title.partition(" (")[0] == head for e in ATTACKS.values())
    return head if same == 1 or not rest else f"{head}-{rest.rstrip(')')}"


def column_colour(k: int) -> str:
    """The colour of the k-th column or series of a page."""
    return PALETTE[k % len(PALETTE)]


def series_style(k: int) -> dict:
    """Line style of the k-th series: its colour and a dash pattern, so series stay apart in grey print too."""
    return dict(color=column_colour(k), dash=DASHES[k % len(DASHES)])
