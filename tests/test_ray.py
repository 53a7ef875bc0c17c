"""The Ray backend on a real single-node Ray cluster (started by advlens itself, on 127.0.0.1 only).

Ray costs seconds to start on 2 cores, so this is one test: the same small evaluation (C&W at a reduced budget,
2 digits × 9 targets in 2 chunks, and I-FGM at a fixed ε) in-process and through ``--backend ray`` with two
workers, compared row by row. Both sides use one torch thread so their float reductions agree.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch

from advlens.cli import main
from advlens.evaluation.store import DB_NAME

ray = pytest.importorskip("ray")

ARGS = ["--attack", "cw:binary_search_steps=2,steps=60,initial_const=1,learning_rate=0.1", "--attack",
        "ifgm:epsilon=0.2", "--images", "mnist:0-1", "--targets", "all", "--chunk", "9"]


def rows(out):
    with sqlite3.connect(out / DB_NAME) as conn:
        return conn.execute("SELECT model, image, target, attack, params, success, pred_after, l0, l1, l2, linf, c, "
                            "iterations FROM results ORDER BY attack, params, image, target").fetchall()


def test_the_ray_backend_stores_the_rows_of_the_in_process_backend(tmp_path, monkeypatch):
    from advlens.evaluation.ray_backend import RayBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", "--out", str(tmp_path / "local"), *ARGS]) == 0
    finally:
        torch.set_num_threads(threads)

    seen = {}
    close = RayBackend.close

    def look_then_close(self):
        seen["gcs"] = ray.get_runtime_context().gcs_address
        seen["nodes"] = [n["NodeManagerAddress"] for n in ray.nodes()]
        seen["workers"] = len(self.workers)
        close(self)

    monkeypatch.setattr(RayBackend, "close", look_then_close)
    assert main(["evaluate", "--out", str(tmp_path / "ray"), "--backend", "ray", "--workers", "2", *ARGS]) == 0
    assert not ray.is_initialized()  # the cluster advlens started is gone with the run
    assert seen["gcs"].startswith("127.0.0.1:") and set(seen["nodes"]) == {"127.0.0.1"}, seen
    assert seen["workers"] == 2

    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert len(local) == 36
    assert [r[:7] for r in remote] == [r[:7] for r in local]
    assert np.allclose([r[7:] for r in remote], [r[7:] for r in local], rtol=1e-4, atol=1e-5)
