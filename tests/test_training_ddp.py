"""DDP on CPU (gloo, 2 processes): every rank runs the same number of batches, on its own data.

The test runs this file as a script, because Lightning's ``ddp`` strategy starts rank 1 by
re-running the command line of rank 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl

from agents.policy import PolicyConfig
from training.data.datamodule import ShardDataModule
from training.module import PolicyModule

BATCHES_PER_EPOCH = 3
EPOCHS = 2


class RecordBatches(pl.Callback):
    """Writes ``rank{r}.json``: the goals of every training batch this rank ran."""

    def __init__(self, out: Path):
        self.out, self.goals = out, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.goals.append(batch["goals"].tolist())

    def on_train_end(self, trainer, pl_module):
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"world_size": trainer.world_size, "goals": self.goals}))


def run_ddp(root: str, out: str) -> None:
    dm = ShardDataModule(root, seq_len=8, image_size=(32, 48), batch_size=2,
                         batches_per_epoch=BATCHES_PER_EPOCH, num_workers=1, augment=True)
    policy = PolicyConfig(channels=(8, 16), groups=4, pool_size=(2, 3), feature_dim=16,
                          goal_dim=4, action_dim=4, hidden_dim=16)
    model = PolicyModule(policy=policy, dataset_spec=dm.spec)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[RecordBatches(Path(out))])
    trainer.fit(model, datamodule=dm)


def test_ddp_two_cpu_ranks_run_equal_batches(tmp_path):
    from training_helpers import write_dataset

    # one train shard for two ranks: resampling keeps both ranks fed
    root = write_dataset(tmp_path / "ds", shards={"train": (1, 4), "val": (1, 2)})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, __file__, str(root), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [len(r["goals"]) for r in ranks] == [BATCHES_PER_EPOCH * EPOCHS] * 2
    assert ranks[0]["goals"] != ranks[1]["goals"]  # each rank draws its own stream


if __name__ == "__main__":
    run_ddp(sys.argv[1], sys.argv[2])
