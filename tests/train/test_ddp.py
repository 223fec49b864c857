"""Multi-process training: `ddad-edge train` under torchrun with two CPU processes (gloo), the epoch
sharding, and the environment checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddad_edge.config import RunConfig
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import load_checkpoint
from ddad_edge.model.unet import UNet
from ddad_edge.train.diffusion import _sharded_batches
from ddad_edge.train.distributed import DistEnv, detect_env, device_for, rank_seed, shard_epoch
from ddad_edge.yaml_strict import from_dict

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_two_cpu_processes_train_one_model(synth_root, tmp_path):
    out, evidence = tmp_path / "run", tmp_path / "evidence"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # 32 training images, 16 per rank: batch 4 per process → 4 steps per epoch; 6 steps cross an epoch
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(REPO / "tests/train/ddp_worker.py"),
           str(evidence), "--", "--data", str(synth_root), "--category", "widget", "--preset", "tiny",
           "--image-size", "32", "--max-steps", "6", "--batch-size", "4", "--device", "cpu",
           "--out", str(out), "--no-ema"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(evidence / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["code"] for r in ranks] == [0, 0] and [r["world_size"] for r in ranks] == [2, 2]

    # only rank 0 wrote the run folder
    assert ranks[0]["prepared"] == [str(out)] and ranks[1]["prepared"] == []
    assert ranks[1]["saved"] == []
    assert ranks[0]["saved"] and all(Path(p).parent == out / "checkpoints" for p in ranks[0]["saved"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]

    # both ranks hold the same weights, the checkpoint holds them, and training moved them
    w0, w1 = ranks[0]["unet"], ranks[1]["unet"]
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    assert all(torch.equal(payload["unet"][k], w0[k]) for k in w0)
    assert payload["step"] == 6 and payload["world_size"] == 2 and payload["finished"]
    assert torch.isfinite(torch.tensor(payload["loss"]))
    torch.manual_seed(from_dict(RunConfig, payload["config"]).train.seed)
    initial = UNet(from_dict(RunConfig, payload["config"]).model).state_dict()
    assert any(not torch.equal(initial[k], w0[k]) for k in w0)
    # the command's report comes from every rank; the training itself happened once, with 2 processes
    assert "trained 6 steps" in done.stdout


def test_epoch_shards_are_disjoint_and_cover_every_image():
    n, world, seed = 10, 4, 7
    for epoch in range(3):
        shards = [shard_epoch(n, world, r, seed, epoch) for r in range(world)]
        assert all(len(s) == 3 for s in shards)  # ceil(10 / 4)
        flat = torch.cat(shards).tolist()
        assert set(flat) == set(range(n))  # every image, two of them twice (wrapped padding)
        assert len(flat) == 12
        # the same shard on a rank that computes it again (every rank draws the same permutation)
        assert torch.equal(shards[2], shard_epoch(n, world, 2, seed, epoch))
    assert not torch.equal(shard_epoch(n, 1, 0, seed, 0), shard_epoch(n, 1, 0, seed, 1))
    assert sorted(shard_epoch(n, 1, 0, seed, 0).tolist()) == list(range(n))
    # two ranks, an even count: an exact partition
    a, b = shard_epoch(8, 2, 0, 1, 5), shard_epoch(8, 2, 1, 1, 5)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(8))


def test_a_resumed_rank_continues_mid_epoch_where_it_stopped():
    env = DistEnv(1, 2, 1)
    fresh = _sharded_batches(n=20, batch=3, steps_per_epoch=3, seed=5, env=env, step=0)
    first = [next(fresh) for _ in range(8)]
    resumed = _sharded_batches(n=20, batch=3, steps_per_epoch=3, seed=5, env=env, step=5)
    assert all(torch.equal(a, b) for a, b in zip(first[5:], [next(resumed) for _ in range(3)]))
    assert torch.equal(first[3], shard_epoch(20, 2, 1, 5, 1)[:3])  # step 3 opens epoch 1


def test_noise_seeds_differ_by_rank_and_step():
    seeds = {rank_seed(42, r, s) for r in range(4) for s in range(50)}
    assert len(seeds) == 200


def test_environment_of_torchrun():
    assert detect_env({}) == DistEnv(0, 1, 0)
    env = detect_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": "29500"})
    assert env == DistEnv(3, 4, 1) and env.distributed and not env.is_main
    with pytest.raises(DdadError, match="MASTER_ADDR"):
        detect_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(DdadError, match="do not fit"):
        detect_env({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"})
    with pytest.raises(DdadError, match="not an integer"):
        detect_env({"WORLD_SIZE": "two"})
    assert device_for(DistEnv(1, 2, 1), "cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert device_for(DistEnv(1, 2, 1), "auto") == torch.device("cpu")
        with pytest.raises(DdadError, match="no CUDA GPU"):
            device_for(DistEnv(1, 2, 1), "cuda")
