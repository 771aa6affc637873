"""``spoc-explorer fit``: train the explorer network (:class:`agents.explorer.ExplorerNet`)
on ``collect``'s files with Lightning, on the softmax of minus the block costs
(``FitConfig.temperature``), and keep the epoch with the least held-out regret (the cost of
the picked block over the least, in oracle moves, on each folder's last chunk).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from agents.explorer import FORMAT, ExplorerConfig, ExplorerNet, nearest_prior
from common.files import check_out_dir, write_atomic
from training.explorer.data import Chunks, ExplorerInputError, check_at_least

REGRET_CAP = 64.0
"""The regret counted for picking a frontier block the oracle cannot value."""


@dataclass
class FitConfig:
    """Fit the explorer network on ``collect``'s files (the last file of each folder is held
    out for validation)."""

    data: list[str] = field(default_factory=lambda: ["runs/explorer/data"])
    """Folders written by ``spoc-explorer collect`` (rounds are aggregated)."""
    out: str = "runs/explorer/model"
    """Folder for Lightning's logs and checkpoints, and ``explorer.pt``."""
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 2.0
    """Target: softmax of minus the block costs (oracle moves) over this."""
    seed: int = 0
    width: int = 16
    """``ExplorerConfig.width``."""
    threads: int = 2
    ckpt_path: str | None = None
    """Resume from this Lightning checkpoint of an earlier ``fit`` (e.g. its ``last.ckpt``),
    with ``epochs`` the new total."""

    def __post_init__(self):
        if not self.data:
            raise ExplorerInputError("--data []: give the folders `spoc-explorer collect` wrote")
        check_at_least(self, ("epochs", "batch_size", "width", "threads"), 1)
        check_at_least(self, ("seed",), 0)
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ExplorerInputError(f"--{name} {getattr(self, name)} must be > 0")


def resumed_epochs(path: str, epochs: int) -> int:
    """The epochs a ``--ckpt_path`` checkpoint has done (ExplorerInputError when it is no
    Lightning checkpoint of ``fit``, or has done ``epochs`` already)."""
    where = f"--ckpt_path {path}"
    if not Path(path).is_file():
        raise ExplorerInputError(f"{where}: no such file; give a checkpoint of an earlier fit "
                                 "(OUT/lightning_logs/version_*/checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        done = int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
        if not any(k.startswith("net.") for k in ckpt["state_dict"]):
            raise KeyError("net")
    except Exception as e:  # noqa: BLE001 - truncated, foreign or another model's checkpoint
        raise ExplorerInputError(f"{where}: not a checkpoint of `spoc-explorer fit` "
                                 f"({type(e).__name__}); give one of an earlier fit") from None
    if done >= epochs:
        raise ExplorerInputError(f"--epochs {epochs}: {where} has done {done} epoch(s) already; "
                                 "give the new total, more than that")
    return done


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the true entries of ``mask`` per row (B, N, N); -inf elsewhere."""
    flat = logits.flatten(1).masked_fill(~mask.flatten(1), float("-inf"))
    return F.log_softmax(flat, dim=1).view_as(logits)


def soft_targets(costs: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax of minus the block costs (B, N, N) over ``mask`` (inf costs get none)."""
    flat = costs.flatten(1)
    flat = torch.where(mask.flatten(1) & torch.isfinite(flat), -flat / temperature,
                       torch.full_like(flat, float("-inf")))
    return F.softmax(flat, dim=1).view_as(costs)


def data_files(folders: list[str]) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): each folder's last chunk is held out."""
    train, held = [], []
    for folder in folders:
        files = sorted(Path(folder).glob("chunk-*.npz"))
        if len(files) < 2:
            raise ExplorerInputError(f"--data {folder}: {len(files)} chunk file(s); "
                                     "`spoc-explorer collect` at least two chunks (one is held "
                                     "out)")
        train += files[:-1]
        held.append(files[-1])
    return train, held


def explorer_loss(net: ExplorerNet, batch, temperature: float):
    """(cross-entropy to the soft targets, mean regret of the argmax block)."""
    view, goal, allowed, costs = batch
    logits = net(view, goal)
    logp = masked_log_softmax(logits, allowed)
    target = soft_targets(costs, allowed, temperature)
    loss = -(target * torch.where(target > 0, logp, torch.zeros_like(logp))).flatten(1).sum(1)
    return loss.mean(), regret(logp, costs)


def regret(scores: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the cost of the best-scored block (B, n, n) minus the least
    cost, in oracle moves (a block the oracle cannot value counts ``REGRET_CAP``)."""
    flat = costs.flatten(1)
    chosen = flat.gather(1, scores.flatten(1).argmax(1)[:, None])[:, 0]
    best = flat.min(1).values
    out = torch.where(torch.isfinite(chosen), chosen - best, torch.full_like(best, REGRET_CAP))
    return out.mean()


def fit(cfg: FitConfig) -> Path:
    """Train and write ``out/explorer.pt``; its path."""
    check_out_dir(cfg.out)
    if cfg.ckpt_path is not None:
        resumed_epochs(cfg.ckpt_path, cfg.epochs)
    torch.set_num_threads(cfg.threads)
    train_files, held_files = data_files(cfg.data)
    train, held = Chunks(train_files), Chunks(held_files)
    if (train.goals, train.context) != (held.goals, held.context):
        raise ExplorerInputError(f"--data: the held-out chunk {held_files[0]} has other goals "
                                 f"or context than {train_files[0]}; fit on files collected "
                                 "alike")
    pl.seed_everything(cfg.seed, workers=True)
    module = ExplorerModule(len(train.goals), len(train.context), cfg)
    loader = torch.utils.data.DataLoader(train, cfg.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = torch.utils.data.DataLoader(held, 256)
    best = pl.callbacks.ModelCheckpoint(monitor="val/regret", mode="min", save_last=True)
    trainer = pl.Trainer(max_epochs=cfg.epochs, default_root_dir=cfg.out, accelerator="cpu",
                         deterministic=True, enable_progress_bar=True, log_every_n_steps=50,
                         callbacks=[best])
    trainer.fit(module, loader, val_loader, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    kept = torch.load(best.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(kept["state_dict"])  # the epoch with the least held-out regret
    path = Path(cfg.out) / "explorer.pt"
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": {"width": cfg.width, "temperature": cfg.temperature},
                "goals": train.goals, "context": train.context,
                "state_dict": module.net.state_dict(),
                "info": {"train_samples": len(train), "held_samples": len(held),
                         "data": cfg.data, "epochs": cfg.epochs, "kept_epoch": kept["epoch"],
                         "kept_val_regret": float(best.best_model_score),
                         "last_metrics": metrics}}, buf)
    write_atomic(path, buf.getvalue())
    return path


class ExplorerModule(pl.LightningModule):
    """Lightning's view of the explorer network."""

    def __init__(self, num_goals: int, context: int, cfg: FitConfig):
        super().__init__()
        self.cfg = cfg
        self.net = ExplorerNet(num_goals, ExplorerConfig(cfg.width, cfg.temperature), context)

    def training_step(self, batch, _):
        loss, mine = explorer_loss(self.net, batch, self.cfg.temperature)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/regret", mine)
        return loss

    def validation_step(self, batch, _):
        loss, mine = explorer_loss(self.net, batch, self.cfg.temperature)
        view, _, allowed, costs = batch
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/regret", mine, prog_bar=True)
        self.log("val/regret_nearest", regret(nearest_prior(view).masked_fill(
            ~allowed, float("-inf")), costs))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=1e-4)
