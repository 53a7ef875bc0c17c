"""The image picker (gallery, thumbnails, upload) and the target-class widget.

The picker draws without the model: a gallery image's true class is known, and the model's reading of it is
filled in by ``show_reading`` once the model has loaded. Only an unlabelled upload waits for the model first,
because its true class is the model's own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import show_error
from ui.resources import ModelChoice, gallery_items, load_ref, load_upload, require_model
from ui.state import image_key, keep, page_widget

if TYPE_CHECKING:
    import numpy as np

    from advlens.images import GalleryImage, LoadedImage

RUNNER_UP, UNTARGETED = -2, -1  # the target widget's two choices that are not a class


@dataclass
class Picked:
    image: LoadedImage
    title: str
    ref: str  # what the report records: the gallery ref, or upload:<file name>
    label: Optional[int]  # the true class t0 when the image has one
    top: list[tuple[int, float]] = field(default_factory=list)  # the model's top-5 on the clean image, once read
    reading: Any = None  # where the model's reading is written (a placeholder)

    @property
    def label_known(self) -> bool:
        return self.label is not None

    @property
    def true_class(self) -> int:
        """t0: the label, or the model's prediction for an unlabelled image (read it first)."""
        return self.label if self.label is not None else self.top[0][0]

    @property
    def runner_up(self) -> Optional[int]:
        others = [c for c, _ in self.top if c != self.true_class]
        return others[0] if others else None


def thumb_items(items: list[GalleryImage], limit: int = 20) -> list[GalleryImage]:
    """A browsable subset: the first image of each class (MNIST), or the first ``limit`` (ImageNet)."""
    if items and items[0].dataset == "mnist":
        first: dict[Optional[int], GalleryImage] = {}
        for it in items:
            first.setdefault(it.label, it)
        return sorted(first.values(), key=lambda it: it.label or 0)
    return items[:limit]


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(ref: str, model_name: str) -> np.ndarray:
    from interpret.render import enlarge, to_rgb

    return enlarge(to_rgb(load_ref(ref, model_name).tensor[0]), 84)


def short_title(title: str) -> str:
    return title.split(" (")[0][:14]


def image_picker(page: str, choice: ModelChoice, *, with_upload: bool = True) -> Optional[Picked]:
    """Gallery select box, thumbnails and upload; shows the chosen image, its class and notes. None if the image
    cannot be used (the reason is shown)."""
    ds = choice.spec.dataset
    items = gallery_items(ds)
    refs = [it.ref for it in items]
    titles = {it.ref: it.title for it in items}
    key = keep(image_key(ds), refs[0])
    source_key = f"image.source.{ds}"
    if st.session_state[key] not in refs:
        st.session_state[key] = refs[0]

    upload_key = f"upload.{page}.{ds}"

    def picked_gallery() -> None:
        st.session_state[source_key] = "gallery"
        _dismiss_upload_error(upload_key)

    st.selectbox("Image", refs, key=key, format_func=lambda r: titles.get(r, r), on_change=picked_gallery,
                 help=f"{len(refs)} bundled {ds} images" + (" (held-out digits the network never trained on)"
                                                            if ds == "mnist" else "") + ".")
    row = st.columns(2 if with_upload else 1, gap="small")
    if row[0].button("Browse", key=f"browse.{page}", icon=":material/grid_view:", width="stretch",
                     help="Thumbnails of the gallery: one image per class."):
        _browse(page, choice.name, thumb_items(items), key, source_key, upload_key)
    if with_upload:
        with row[1].popover("Upload", icon=":material/upload:", width="stretch", help="Use an image of your own."):
            up = st.file_uploader("Upload your own image", key=upload_key,
                                  help="PNG, JPEG, WebP, GIF, BMP or TIFF. Large images are downscaled; grayscale "
                                       "and colour are converted to what the model takes.")
        if up is not None:
            data = up.getvalue()
            _, upload_error = load_upload(data, choice.name)
            if upload_error:
                if st.session_state.get(_dismissed_key(upload_key)) != up.file_id:  # until an image is picked instead
                    show_error(upload_error)
            elif st.session_state.get(f"image.upload_id.{ds}") != up.file_id:
                st.session_state[f"image.upload_id.{ds}"] = up.file_id
                st.session_state[f"image.upload.{ds}"] = (up.name, data)
                st.session_state[source_key] = "upload"
    picked = _chosen(choice, key, source_key, titles)
    if picked is not None:
        _show(picked, choice)
        if not picked.label_known and not picked.top:
            return None  # an unlabelled image needs the model's reading, and the model is not available
    return picked


def _chosen(choice: ModelChoice, key: str, source_key: str, titles: dict[str, str]) -> Optional[Picked]:
    from advlens.images import ImageError

    ds = choice.spec.dataset
    if st.session_state.get(source_key) == "upload" and f"image.upload.{ds}" in st.session_state:
        name, data = st.session_state[f"image.upload.{ds}"]
        image, _ = load_upload(data, choice.name)
        if image is not None:
            return Picked(image, f"upload: {name}", f"upload:{name}", image.label)
        st.session_state[source_key] = "gallery"  # the model changed and the upload no longer converts
    ref = st.session_state[key]
    try:
        image = load_ref(ref, choice.name)
    except ImageError as err:
        show_error(err)
        return None
    return Picked(image, titles.get(ref, ref), image.ref, image.label)


def _dismissed_key(upload_key: str) -> str:
    return f"{upload_key}.dismissed"


def _dismiss_upload_error(upload_key: str) -> None:
    """A gallery image was picked: a failed upload still in the uploader no longer says so above the results."""
    up = st.session_state.get(upload_key)
    if up is not None:
        st.session_state[_dismissed_key(upload_key)] = up.file_id


@st.dialog("The gallery, one image per class", width="large")
def _browse(page: str, model_name: str, thumbs: list[GalleryImage], key: str, source_key: str,
            upload_key: str) -> None:
    """Thumbnails in a dialog (drawn only when asked for: the first page stays light); a click picks one."""
    if st.session_state.pop(f"browse.{page}.picked", False):
        st.rerun()  # close the dialog; the page redraws with the picked image
    for start in range(0, len(thumbs), 5):
        for col, it in zip(st.columns(5, gap="small"), thumbs[start:start + 5]):
            with col:
                st.image(thumbnail(it.ref, model_name), width="stretch")
                st.button(short_title(it.title), key=f"thumb.{page}.{it.ref}", width="stretch", type="tertiary",
                          on_click=_use_ref, args=(page, key, source_key, it.ref, upload_key), help=it.title)


def _use_ref(page: str, key: str, source_key: str, ref: str, upload_key: str) -> None:
    st.session_state[key] = ref
    st.session_state[source_key] = "gallery"
    _dismiss_upload_error(upload_key)
    st.session_state[f"browse.{page}.picked"] = True


def _show(p: Picked, choice: ModelChoice) -> None:
    from interpret.render import crisp

    names = choice.spec.class_names
    cols = st.columns([1, 1], gap="small", vertical_alignment="center")
    with cols[0]:
        st.image(crisp(p.image.tensor[0]), width="stretch")
    with cols[1]:
        st.markdown(f"**{p.title}**")
        if p.label is not None:
            st.markdown(f"True class **{names[p.label]}**")
        p.reading = st.empty()
    for note in p.image.notes:
        st.caption(f":material/info: {note}")
    if not p.label_known and require_model(choice) is not None:
        show_reading(p, choice)


def show_reading(p: Picked, choice: ModelChoice) -> None:
    """The model's top class on the clean image, written into the picker (call once the model is ready)."""
    from advlens.report import top_classes

    model = choice.model
    if model is None or p.reading is None:
        return
    if not p.top:
        p.top = top_classes(model, p.image.tensor, k=5)[0]
    pred, prob = p.top[0]
    names = choice.spec.class_names
    with p.reading.container():
        if p.label_known:
            ok = ":green[✓]" if pred == p.label else ":red[✗ misclassified]"
            st.markdown(f"Model says **{names[pred]}** ({prob:.1%}) {ok}")
        else:
            st.markdown(f"Model says **{names[pred]}** ({prob:.1%})")
            st.caption("No label: the model's prediction is taken as the true class t₀.")
        if p.runner_up is not None:  # what the target widget's default means for this image
            st.caption(f"Runner-up: {names[p.runner_up]} (the default target)")


def target_widget(page: str, choice: ModelChoice, label: int) -> str:
    """The target class t: the runner-up class (read when the attack runs), untargeted, or any other class."""
    spec = choice.spec
    names = spec.class_names
    options = [RUNNER_UP, UNTARGETED] + [c for c in range(spec.num_classes) if c != label]
    key = page_widget(page, f"{spec.dataset}.target", RUNNER_UP)
    if st.session_state[key] not in options:  # the image (and so its class) changed since the target was chosen
        st.session_state[key] = RUNNER_UP

    def name(c: int) -> str:
        if c == RUNNER_UP:
            return "Runner-up class (the model's second choice)"
        if c == UNTARGETED:
            return "Untargeted (any other class)"
        return names[c] if names[c] == str(c) else f"{c} · {names[c]}"

    st.selectbox("Target class t", options, key=key, format_func=name,
                 help="Targeted: the attack must make the model say t. The default is the model's runner-up class "
                      "on this image, the easiest target.")
    return key


def resolve_target(value: Any, picked: Picked) -> Optional[int]:
    """A target widget's value as a class, or None (untargeted); the runner-up needs the model's reading."""
    if value in (None, UNTARGETED):
        return None
    if value == RUNNER_UP:
        return picked.runner_up
    return int(value)
