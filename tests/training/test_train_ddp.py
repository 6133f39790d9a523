"""Two-process DistributedDataParallel training on the CPU (gloo), spawned like torchrun would."""

import json
import os
import socket

import torch
import torch.multiprocessing as mp
from helpers import checkpoint_step

from clipmat.factory import load_model
from clipmat.training.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, result_dir: str) -> None:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world)}
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from clipmat.training.loop import train

    summary = train(TrainConfig.from_dict(cfg_dict))
    dist.destroy_process_group()
    with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as f:
        json.dump(summary, f)


def test_two_process_gloo_run(tmp_path):
    cfg = TrainConfig(
        image_size=32,
        batch_size=2,
        steps=3,
        warmup_steps=1,
        log_every=1,
        out_dir=str(tmp_path / "run"),
        progress=False,
        threads=1,
        device="cpu",
    )
    mp.spawn(_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["step"] for r in results] == [3, 3]
    # losses are averaged over both processes before logging, so the ranks report the same
    assert results[0]["last_loss"] == results[1]["last_loss"]
    assert checkpoint_step(tmp_path / "run" / "last.safetensors") == 3
    lines = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(lines) == 4  # header + steps 1..3, written by rank 0 only
    rate = float(lines[-1].split(",")[-2])
    assert rate > 0
    assert torch.isfinite(load_model(tmp_path / "run" / "last.safetensors").prompt.context).all()
