"""geryon mapreduce on a loopback cluster of three cpu nodes: results equal to the local
pipeline (awkward bytes too), failures, stragglers, timeouts, the driver killed and
resumed, the registry restarted mid-job, jobs listed, logged and cleaned up after.
(Across hosts, with nodes killed: test_mapreduce_netns.py.)"""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from support import (GERYON, Process, env_for, make_home, start_node,
                     start_registry, wait_for)

NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("mapreduce")
    home = make_home(base / "admin")
    registry = start_registry(home)
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=base / "cluster")
    nodes = [start_node(home, registry.address, base / f"chunks{i}", f"node{i}", 6, "160K",
                        extra=("--cpu", "--state", str(base / f"state{i}"), "--cpu-chunks",
                               "2", "--cpu-chunk-size", "24M")) for i in range(NODES)]
    corpus = text_corpus(base / "corpus", files=48, words=2500)
    load(env, "mbox", corpus)
    c = {"home": home, "env": env, "corpus": corpus, "nodes": nodes, "base": base,
         "registry": registry}
    yield c
    for node in c["nodes"]:
        node.stop()
    c["registry"].stop()


def text_corpus(path, files, words, seed=7):
    """Mail-like files of words from a large vocabulary (so that they compress no better
    than text): path/inbox/N/mK and path/sent/N/mK."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
                  for _ in range(20000)]
    for i in range(files):
        target = path / ("inbox" if i % 2 else "sent") / f"{i // 10}" / f"m{i}"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(vocabulary) + rng.choice(("", "", ",", ".", "!"))
                        for _ in range(words))
        target.write_text(text + "\n")
    return path


def load(env, app, *sources):
    done = subprocess.run([GERYON, "load", "--app", app, "--replicas", "0", *map(str, sources)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refreshed = subprocess.run([GERYON, "refresh"], env=env, capture_output=True, text=True,
                               timeout=60)
    assert refreshed.returncode == 0, refreshed.stderr
    return [line.split()[0] for line in done.stdout.splitlines() if line.startswith("d")]


def geryon(cluster, *args, timeout=180, **kw):
    return subprocess.run([GERYON, *args], env=cluster["env"], capture_output=True,
                          timeout=timeout, **kw)


def mapreduce(cluster, *args, timeout=180):
    done = geryon(cluster, "mapreduce", *args, timeout=timeout)
    return done, done.stdout.decode().split("\n")[0] if done.returncode == 0 else ""


def result(cluster, job) -> bytes:
    done = geryon(cluster, "jobs", "cat", job)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sorted_lines(data: bytes) -> list[bytes]:
    return sorted(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"))


def local_pipeline(files, map_cmd, reduce_cmd) -> bytes:
    """cat files | map | LC_ALL=C sort | reduce, as one local shell pipeline."""
    paths = " ".join(f"'{p}'" for p in files)
    done = subprocess.run(f"cat {paths} | {map_cmd} | LC_ALL=C sort | {reduce_cmd}",
                          shell=True, capture_output=True, timeout=120,
                          env={**os.environ, "PATH": f"{os.path.dirname(GERYON)}:"
                                                     f"{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def disks_of(cluster, app):
    return sorted(line.split()[0] for line in subprocess.run(
        [GERYON, "regquery", "-n", "automount", "1"], env=cluster["env"], text=True,
        capture_output=True, check=True).stdout.splitlines()
        if line.split()[0].endswith(f".{app}"))


def events(cluster, job):
    path = cluster["home"] / "jobs" / job / "events"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_word_count_equals_the_local_pipeline_and_cleans_up(cluster):
    disks = disks_of(cluster, "mbox")
    assert len(disks) >= 3, disks
    done, job = mapreduce(cluster, "-R", "4", "{idx /n/d*.mbox/*/*/*}", "agg", *disks)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split("\n")
    assert lines[0] == job and lines[1].split() and all(d.endswith(".cpu")
                                                        for d in lines[1].split())
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    got = result(cluster, job)
    assert sorted_lines(got) == sorted_lines(want)
    keys = [line.split()[0] for line in got.splitlines()]
    assert len(keys) == len(set(keys))
    # counters from the blocks' reporter lines are summed and shown
    assert b"geryon: map input bytes: " in done.stderr
    # the intermediate files are gone from every cpu disk; the parts are there
    listing = geryon(cluster, "rcpu", "{ls -R /n}", *sorted(set(lines[1].split())))
    text = listing.stdout.decode()
    assert "map" not in text.split() and f"part0.a" in text, text
    started = [e for e in events(cluster, job) if e["ev"] == "start"]
    assert {e["task"] for e in started} == {f"m{k}" for k in range(len(disks))} | \
        {f"r{r}" for r in range(4)}
