"""Paper presets (issue 11): one click sets model, image, attacks and budget and opens the page that reproduces a
figure; the Table 1 preset is also run, at the budget it sets (the app's MNIST CPU budget, 3 × 100: about 2 s),
and shows the table's contrast: at the same β, EAD's δ is far sparser than COV's."""

from __future__ import annotations

import pytest

from tests.test_app import RUNS, start
from ui.paper_presets import PRESETS
from ui.state import MODEL_KEY, image_key, widget_key


def press_preset(name: str):
    at = start()
    k = next(k for k, p in enumerate(PRESETS) if p.name == name)
    at.button(key=f"paper_preset.{k}").click().run()
    assert not at.exception, at.exception
    return at, PRESETS[k]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.page)
def test_a_preset_sets_its_page_up_and_says_what_to_press(preset):
    at, _ = press_preset(preset.name)
    assert any(preset.source in i.value and preset.button in i.value for i in at.info)
    for key, value in preset.state.items():
        assert at.session_state[key] == value, key
    assert at.session_state[MODEL_KEY] == "mnist-cnn"
    if preset.page == "sweep":
        boxes = {b.label: b.value for b in at.number_input}
        assert (boxes["From"], boxes["To"], boxes["Values"]) == (1e-5, 1e-1, 5)
    else:
        assert any(b.label.startswith("Run") for b in [*at.button, *at.get("form_submit_button")])


def test_table1_preset_shows_covs_l1_far_above_eads():
    at, preset = press_preset("COV vs EAD at β = 0.01")
    assert at.session_state[widget_key("compare", "lineup")] == ["EAD-FISTA · EN rule", "COV"]
    assert at.session_state[image_key("mnist")] == "mnist:3"
    at.get("form_submit_button")[0].click().run()
    assert not at.exception, at.exception
    runs = {r.title: r.report for r in at.session_state[RUNS]["compare"].runs}
    ead, cov = runs["EAD-FISTA · EN rule"], runs["COV"]
    assert ead.params["beta"] == cov.params["beta"] == 1e-2
    assert ead.success and cov.success
    assert ead.l0 < 0.6 * cov.l0 and ead.l1 < cov.l1, (ead.l0, cov.l0, ead.l1, cov.l1)
