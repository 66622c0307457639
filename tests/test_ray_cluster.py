"""``emofer predict --ray`` against a two-node Ray cluster on this machine, which loses a node mid-job.

The cluster is ``ray.cluster_utils.Cluster`` (as Ray's own tests do): a head and a second node of
1 CPU each, started and torn down by the test. Ray binds this machine's interface address; every
process is on this machine and the CLI joins by the head's address. Rows are compared with
sequential ``EmotionRecognizer.predict``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_ray_faults import assert_table, expected, inputs, own_workers  # noqa: F401 - fixtures used below


@pytest.fixture
def two_nodes():
    """A head node and a second node, 1 CPU each; (cluster, second node). Shut down after the test."""
    pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1)
        yield cluster, second
    finally:
        cluster.shutdown()


def shard_nodes(folder: Path) -> list[str]:
    """The node id each shard in ``folder`` was written on (from the shard's footer)."""
    import pyarrow.parquet as pq

    return [json.loads(pq.read_schema(p).metadata[b"emofer.inputs"])["node"] for p in sorted(folder.glob("*.parquet"))]


@pytest.mark.slow
def test_cli_on_two_nodes_survives_losing_the_second(two_nodes, inputs, expected, tmp_path: Path) -> None:  # noqa: F811
    cluster, second = two_nodes
    folder, images, corrupt = inputs
    out = tmp_path / "faces.parquet"
    raylet = second.all_processes["raylet"][0].process.pid
    process = subprocess.Popen(
        [sys.executable, "-m", "emofer", "predict", str(folder), "--ray", "--ray-address", cluster.address,
         "--workers", "2", "--out", str(out)],
        env={**os.environ, "RAY_ADDRESS": ""}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not own_workers("_shard_task", raylet) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None and own_workers("_shard_task", raylet), "no task ever ran on the second node"
        cluster.remove_node(second, allow_graceful=False)  # mid-task: its shard must be redone on the head
        stdout, stderr = process.communicate(timeout=600)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == 1, stderr  # 1: some inputs unreadable (the corrupt files), job complete
    assert f"{len(images) + len(corrupt)} items" in stderr and f"{len(corrupt)} failed" in stderr
    assert_table(out, folder, expected, corrupt)
    # the second node's shard, in flight when it went, is redone on the head (unless it was committed just before)
    assert set(shard_nodes(out)) <= {cluster.head_node.node_id, second.node_id}
