"""``clipmat.evaluation.evaluate`` sharded over two gloo processes gives the single-process table and JSON."""

import contextlib
import io
import json
import os
import socket

import torch
import torch.multiprocessing as mp

from clipmat.evaluation.evaluate import indexed_miniworld_items, main, miniworld_items

BASE = ["--predictor", "mini-world", "--mini-world", "--size", "96", "--device", "cpu"]
# keyword with a row per keyword; an odd number of items (5 scenes); fewer items than ranks
RUNS = {
    "keyword": ["--images", "6", "--setting", "keyword", "--per-keyword"],
    "expression_odd": ["--images", "5", "--setting", "expression"],
    "one_item": ["--images", "1", "--setting", "keyword"],
}


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _run(args: list[str], out_dir: str, name: str) -> str:
    """main() with ``args``, the JSON written to OUT_DIR/NAME.json; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*BASE, *args, "--json", os.path.join(out_dir, f"{name}.json")]) == 0
    return printed.getvalue()


def _worker(rank: int, world: int, ports: list[int], out_dir: str) -> None:
    """One rank as torchrun starts it: its environment, one thread; main() joins the group."""
    torch.set_num_threads(1)
    for (name, args), port in zip(RUNS.items(), ports, strict=True):
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world)}
        os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
        printed = _run(args, out_dir, name)
        with open(os.path.join(out_dir, f"{name}.rank{rank}.txt"), "w") as f:
            f.write(printed)


def test_two_gloo_processes_match_one(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    single.mkdir()
    sharded.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same sums in the same order, so equal numbers
    try:
        tables = {name: _run(args, str(single), name) for name, args in RUNS.items()}
    finally:
        torch.set_num_threads(threads)
    ports = _free_ports(len(RUNS))
    mp.spawn(_worker, args=(2, ports, str(sharded)), nprocs=2, join=True)
    for name in RUNS:
        one = json.loads((single / f"{name}.json").read_text())
        two = json.loads((sharded / f"{name}.json").read_text())
        assert one.pop("world_size") == 1 and two.pop("world_size") == 2
        # every metric, per-keyword rows included, to the last digit (NaN where undefined)
        assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True), name
        assert (sharded / f"{name}.rank0.txt").read_text() == tables[name]
        assert (sharded / f"{name}.rank1.txt").read_text() == ""  # only rank 0 prints
    keyword = json.loads((single / "keyword.json").read_text())
    assert (
        keyword["n"] >= 6 and sum(r["n"] for r in keyword["per_keyword"].values()) == keyword["n"]
    )
    assert len(list(miniworld_items("expression", images=5))) == 5  # odd: ranks get 3 and 2
    assert [i for i, _ in indexed_miniworld_items("expression", 5, shard=(1, 2))] == [1, 3]
    assert len(list(miniworld_items("keyword", images=1))) == 1  # rank 1 evaluates nothing
