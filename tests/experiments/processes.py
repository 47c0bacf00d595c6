"""Helpers of the tests that run `python -m experiments` in child processes
(multi-worker training, SIGKILL and resume, determinism)."""

import json
import os
import socket
import subprocess
import sys

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

# A run of a few seconds: 64 digits, global batch 16 (4 steps per epoch),
# a one-block MLP-Mixer (no batch norm or dropout, so the loss of a global
# batch does not depend on how it is split between replicas).
TINY_MIXER = [
    "data.max_train_examples=64",
    "data.max_eval_examples=40",
    "data.batch_size=16",
    "model.depth=1",
    "model.embed_dim=16",
    "eval.plots=false",
    "eval.attention_maps=0",
]


def free_ports(count):
    """`count` distinct free TCP ports of 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = REPO_ROOT
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["KERAS_BACKEND"] = "tensorflow"
    env["ATTENTION_ZOO_OFFLINE"] = "1"
    env.update(extra)
    return env


def start_cli(args, log_path, env=None, script=None):
    """Starts `python -m experiments ARGS` (or `python SCRIPT ARGS`)."""
    command = [sys.executable]
    command += [script] if script else ["-m", "experiments"]
    log = open(log_path, "w")
    return subprocess.Popen(
        [*command, *args],
        cwd=REPO_ROOT,
        env=env or child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_all(procs, timeout=300):
    """Waits for every process; kills the rest if one times out."""
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return codes


def read_log(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    with open(path) as f:
        return json.load(f)
