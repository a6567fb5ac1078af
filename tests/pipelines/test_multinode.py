"""`ray job submit` of the sample to a simulated four-node Ray cluster gives the single-node run's
output, although a worker node dies in the middle of the run.

`ray.cluster_utils.Cluster` starts a head node without CPUs and three worker nodes of one logical
CPU each, every node with its own raylet and object store on this machine: everything that needs
a CPU (the stage actors, the shuffles) runs on the workers, and blocks travel between the nodes'
object stores as on a real cluster. The job is the README's `ray job submit --working-dir .` to
the head's dashboard (its driver runs on the head; this process keeps the session's local Ray
instance, `ray_local`). Once every worker node has run row-stage actor tasks, one of them is
removed while its actor processes a block; the run finishes on the other two, whose global
stages still shuffle between nodes. The reference is the session's single-node run (`sample_run`).
"""

import collections
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from pipelines.config import load_config
from pipelines.corpus import list_inputs
from pipelines.workdir import WorkDir
from tests.helpers import ROOT, output_table, stable_stats

pytestmark = pytest.mark.slow

MB = 2**20
WORKER_NODE = {"num_cpus": 1, "object_store_memory": 256 * MB}
RAY = os.path.join(os.path.dirname(sys.executable), "ray")
STAGE_CHAIN = "MapBatches(StageChain)"  # the row-stage actors' tasks ("MapWorker(MapBatches(StageChain)).submit")


@pytest.fixture(scope="module")
def cluster(ray_local):
    """Head node (no CPUs, the dashboard) + three worker nodes."""
    from ray._private.utils import get_ray_address_file

    # Cluster() writes its address to /tmp/ray/ray_current_cluster, where a plain `ray.init()`
    # of any process on this machine would find it: put back what was there.
    address_file = get_ray_address_file(None)
    previous = None
    if os.path.exists(address_file):
        with open(address_file) as handle:
            previous = handle.read()
    # Its own temp dir (short: Unix socket paths are limited to 107 bytes), as `ray start --head
    # --temp-dir` has: a submitted job's driver finds its cluster in the temp dir's address file.
    temp_dir = tempfile.mkdtemp(prefix="rm", dir="/tmp")
    cwd, path = os.getcwd(), os.environ["PATH"]
    os.chdir(ROOT)  # the workers' working directory: configs name paths relative to the repo root
    # The nodes' processes keep this environment: a submitted job's `python` is this one.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + path
    try:
        try:
            cluster = start_cluster(temp_dir)
        except Exception:  # noqa: BLE001 - Ray gives a raylet 30 s to register, too short on a loaded machine
            time.sleep(10)
            cluster = start_cluster(temp_dir)
    finally:
        os.chdir(cwd)
        os.environ["PATH"] = path
        restore_address_file(address_file, previous)
        use_the_sessions_internal_kv()
    yield cluster
    stop_cluster(cluster)
    use_the_sessions_internal_kv()
    shutil.rmtree(temp_dir, ignore_errors=True)


def start_cluster(temp_dir):
    from ray._private.utils import write_ray_address
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        # The head runs the dashboard, which takes job submissions. Its ports and each node's agent
        # port explicit and free: the session's Ray instance holds the defaults.
        head = cluster.add_node(
            num_cpus=0,
            object_store_memory=256 * MB,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            dashboard_agent_listen_port=free_port(),
            temp_dir=temp_dir,
        )
        write_ray_address(head.gcs_address, temp_dir)
        for _ in range(3):
            cluster.add_node(**WORKER_NODE, dashboard_agent_listen_port=free_port(), temp_dir=temp_dir)
        cluster.wait_for_nodes()
    except Exception:
        stop_cluster(cluster)  # without the head's GCS, a raylet that registers late exits
        raise
    return cluster


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_cluster(cluster):
    # Not cluster.shutdown(): it also resets this process's internal KV client, which belongs to
    # the session's Ray instance (ray_local) that later tests use.
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)
    if cluster.head_node is not None:
        cluster.remove_node(cluster.head_node)


def use_the_sessions_internal_kv():
    """Starting a node points this process's internal KV client at that node's GCS
    (ray._private.node.Node._init_gcs_client), and the session's Ray instance (ray_local) uses
    it, for its usage records among others: back to the session's GCS. Else, once the cluster
    is gone, a call through it waits for its GCS for 60 s, then kills this process."""
    import ray
    from ray.experimental import internal_kv

    internal_kv._initialize_internal_kv(ray._private.worker.global_worker.gcs_client)


def restore_address_file(path, content):
    if content is None:
        if os.path.exists(path):
            os.remove(path)
    else:
        with open(path, "w") as handle:
            handle.write(content)


def submit_corpus(out, cluster, log):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [RAY, "job", "submit", "--address", f"http://{cluster.webui_url}", "--working-dir", ".", "--"]
        + ["python", "-m", "pipelines.corpus", "--config", "configs/corpus.yaml", "--out", out],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, log_path, timeout=1500):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    return process.returncode, output


def assert_same_output(out, reference):
    mine, theirs = stable_stats(out), stable_stats(reference)
    for key in (
        "input_documents",
        "kept_documents",
        "removed_documents",
        "quarantined_documents",
        "removed",
        "quarantined",
    ):
        assert mine[key] == theirs[key], key
    assert mine == theirs  # the rest too: per source, languages, signal sums, histograms, dedup stats
    for sub in ("docs", "rejects", "quarantine"):
        got, expected = output_table(out, sub), output_table(reference, sub)
        if expected is None:
            assert got is None, sub
            continue
        assert got is not None and got.column_names == expected.column_names, sub
        assert got["id"].equals(expected["id"]), sub
        for column in expected.column_names:  # text and every signal column, row by row
            assert got[column].equals(expected[column]), (sub, column)
    assert os.path.exists(os.path.join(out, "_SUCCESS")) and not os.path.exists(os.path.join(out, ".run"))


def job_ids(cluster):
    return {job["JobID"] for job in cluster.global_state.job_table()}


def tasks_per_node(cluster, jobs):
    """{node id: Counter(task name)} of the tasks of `jobs`, from the GCS's task events
    (the attempt that last reported; the dashboard is not needed)."""
    per_node = collections.defaultdict(collections.Counter)
    for event in cluster.global_state._get_all_task_events():
        if event.job_id.hex() in jobs and event.state_updates.node_id:
            per_node[event.state_updates.node_id.hex()][event.task_info.name] += 1
    return per_node


def stage_chain_running_on(cluster, node_ids, jobs):
    """A node among `node_ids` where a row-stage actor task of `jobs` runs right now, or None."""
    from ray.core.generated.common_pb2 import FAILED, FINISHED, RUNNING

    for event in cluster.global_state._get_all_task_events():
        states, node = event.state_updates.state_ts_ns, event.state_updates.node_id.hex()
        if (
            event.job_id.hex() in jobs
            and STAGE_CHAIN in event.task_info.name
            and node in node_ids
            and RUNNING in states
            and FINISHED not in states
            and FAILED not in states
        ):
            return node
    return None


def phase_0_over(out, files):
    """Whether phase 0 has written every document of all `files` input files."""
    work = WorkDir(out)
    return len(work.complete_units(0, work.inputs())) == files


def test_ray_job_submit_of_the_sample_on_a_cluster_that_loses_a_worker_node_gives_the_single_node_output(
    sample_run, cluster, in_repo_root, tmp_path
):
    reference, _ = sample_run
    files = len(list_inputs(load_config("configs/corpus.yaml")))
    out, log_path = str(tmp_path / "out"), str(tmp_path / "corpus.log")
    workers = {node.node_id: node for node in cluster.worker_nodes}
    before = job_ids(cluster)
    with open(log_path, "w") as log:
        process = submit_corpus(out, cluster, log)
        # Once phase 0 has written its first parts and each worker node has run row-stage actor
        # tasks, remove a worker node while one of the stage actors on it processes a block: that
        # actor dies with its task in flight, and the node's object store takes blocks with it
        # (ingest outputs, stage outputs not yet written).
        victim, deadline = None, time.monotonic() + 600
        while victim is None and process.poll() is None and time.monotonic() < deadline:
            if glob.glob(os.path.join(out, ".run", "phase-0", "*", "*.parquet")):
                spread = tasks_per_node(cluster, job_ids(cluster) - before)
                if all(spread[node][f"MapWorker({STAGE_CHAIN}).submit"] for node in workers):
                    victim = stage_chain_running_on(cluster, workers, job_ids(cluster) - before)
            if victim is None:
                time.sleep(0.5)
        if victim is not None:
            in_phase_0 = not phase_0_over(out, files)
            cluster.remove_node(workers[victim])
            # No node replaces it: the run finishes on the two surviving worker nodes.
        else:
            process.kill()
        code, output = finish(process, log_path)
    assert victim is not None, "stage actor tasks never seen on every worker node with one running:\n" + output[-3000:]
    assert in_phase_0, "phase 0 was over when the node was removed"  # the node dies during the row stages
    per_node = tasks_per_node(cluster, job_ids(cluster) - before)  # the head has no CPU
    assert not any(STAGE_CHAIN in name for name in per_node[cluster.head_node.node_id]), dict(per_node)
    assert code == 0 and "succeeded" in output, output[-3000:]
    assert_same_output(out, reference)
