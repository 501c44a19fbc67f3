"""Distributed `mmkeras tune` on KerasTuner's own engine: a chief (the oracle, over gRPC) and two workers
(running trials) as local processes on loopback, sharing one tune directory."""

import json
import socket
import subprocess
import sys

import pytest

from tests.test_tune import ENV, image_only_setup, trial_ids, tune_command


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_one_search(tmp_path):
    image_only_setup(tmp_path, 24, 12)
    command = [sys.executable, "-m", "mmkeras", *tune_command("run", "--max-trials", "2", "--budget-minutes", "20")]
    port = str(free_port())
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        env = {**ENV, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": port}
        processes[tuner_id] = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)
    outputs = {}
    try:
        for tuner_id, proc in processes.items():
            outputs[tuner_id] = proc.communicate(timeout=400)
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.kill()
    for tuner_id, proc in processes.items():
        assert proc.returncode == 0, f"{tuner_id}:\n{outputs[tuner_id][0][-2000:]}\n{outputs[tuner_id][1][-3000:]}"
    for worker in ("worker0", "worker1"):
        assert "worker done: the chief selects, compares and exports" in outputs[worker][0]
    chief_out = outputs["chief"][0]
    assert "fusion is not applicable: the data has one modality (image)" in chief_out
    assert "model saved: run/model.keras" in chief_out
    # Every trial once, run by the workers (the chief runs none: it only serves the oracle).
    assert trial_ids(tmp_path / "run" / "trials.csv", "image") == ["0000", "0001"]
    oracle = json.loads((tmp_path / "run" / "image" / "oracle.json").read_text())
    assert sorted(oracle["start_order"]) == ["0000", "0001"] and not oracle["ongoing_trials"]
    ran = {p.stem for p in (tmp_path / "run" / "image").glob("worker*.json")}  # a worker's state, after a trial
    assert ran and ran <= {"worker0", "worker1"}
    assert json.loads((tmp_path / "run" / "tune.json").read_text())["searches"]["image"]["trials"] == 2
