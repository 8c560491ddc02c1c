"""One training loop for dense and low-rank models: SGD, schedules, orthogonality penalty, records.

Per epoch it logs train loss (cross-entropy), regularization loss (the penalty actually added,
lambda included), train top-1, validation and test loss and top-1, learning rate, epoch seconds,
training images per second and, for a low-rank model, how orthogonal its factors are
(:func:`elrt_core.regularizers.orthogonality`, measured whether or not the run regularizes). It checkpoints every epoch atomically, resumes exactly (on CPU an
interrupted and resumed run ends with the same metrics as an uninterrupted one: data order and
SRIP's random vectors are drawn from generators seeded by ``(seed, epoch)``), and runs under
``torchrun`` with DistributedDataParallel.

Divergence: the loss is checked every few steps, and every parameter, batch-norm buffer and
evaluation loss at the end of every epoch, before anything is written. A run that diverges ends
with :class:`TrainingDiverged`, a record with ``status: diverged`` and no weights; the checkpoint
left in the folder is the last epoch whose state was finite.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import data as data_lib
from .. import lowrank, models, records
from ..config import ConfigError, RunOptions, TrainConfig
from ..regularizers import frobenius_decay, orthogonality, penalty
from . import checkpoint, distributed, run_folder
from .distributed import DistContext
from .schedules import lr_factor, reg_factor

__all__ = ["fit", "build_model", "resolve_device", "TrainingDiverged", "evaluate", "non_finite"]

_NAN_CHECK_EVERY = 20  # steps between finiteness checks of the loss (each check synchronizes with the device)
_EVAL_BATCH = 256


class TrainingDiverged(RuntimeError):
    """The run diverged (non-finite loss, parameter, buffer or evaluation); its record says ``diverged``."""


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; allowed: auto, cpu, cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def build_model(config: TrainConfig, dense_runs: Path | None = None) -> nn.Module:
    """The model of ``config``, freshly initialized from ``config.seed``.

    Low-rank models are converted from the dense architecture with ranks chosen for the
    requested reduction by ``config.rank_rule`` (``hw:<id>``: the hardware-aware rule over that
    committed timing table, :func:`elrt_core.train.rank_rule.load_rank_table`; a missing table is an error) and
    Kaiming-variance factors drawn from scratch (no pre-trained weights), or, with ``config.init ==
    "spectral"``, the best fit in the format of the freshly Kaiming-initialized dense kernels; the factors named in
    ``config.orth_init`` are then redrawn with orthonormal rows of their thin side
    (``torch.nn.init.orthogonal_``). ``config.init == "decompose:<hash>"`` (the compression baseline)
    decomposes the trained kernels of the finished dense run of that config hash, found in ``dense_runs``
    (the folder of its profile's runs); without ``dense_runs`` the layers are drawn from scratch, for a
    caller that loads trained weights into the model next.
    """
    timing = None
    if config.rank_rule != "uniform":
        from .rank_rule import load_rank_table

        timing = load_rank_table(config.rank_rule)
    torch.manual_seed(config.seed)
    model = models.get(config.model, config.num_classes)
    if config.format != "dense":
        model = (
            lowrank.convert(
                model,
                config.format,
                flops_ratio=config.flops_ratio,
                params_ratio=config.params_ratio,
                input_shape=config.input_shape,
                init="decompose" if config.init != "scratch" else "scratch",
                timing=timing,
                progress=False,
            )
            if config.decomposes is None
            else _compressed(config, model, timing, dense_runs)
        )
    for layer in model.modules():
        if isinstance(layer, lowrank.Tucker2Conv2d):
            for name in config.orth_init:
                nn.init.orthogonal_(layer.factor_weights()[name])
    return model


def _compressed(config: TrainConfig, dense: nn.Module, timing, dense_runs: Path | None) -> nn.Module:
    """The low-rank model of ``config`` fitted to the trained dense weights its ``init`` names (see
    :func:`build_model`); a missing dense run or ``weights.pt`` is a :class:`ConfigError` saying what to train."""
    budget = {"flops_ratio": config.flops_ratio, "params_ratio": config.params_ratio, "input_shape": config.input_shape}
    if dense_runs is None:
        return lowrank.convert(dense, config.format, **budget, init="scratch", timing=timing)
    found = records.decomposed_run(config, dense_runs)
    if found is None or not (found.path / checkpoint.WEIGHTS_FILE).exists():
        where = (
            f"{found.path} has no {checkpoint.WEIGHTS_FILE}"
            if found
            else f"no finished dense run {config.decomposes} in {dense_runs}"
        )
        raise ConfigError(
            f"init {config.init!r} decomposes a trained dense network, but {where}: train that dense run first "
            "(`elrt batch` of its profile; a record whose weights were not kept is retrained with `elrt train --force`)"
        )
    dense.load_state_dict(checkpoint.load(found.path / checkpoint.WEIGHTS_FILE))
    return lowrank.convert(dense, config.format, **budget, init="decompose", timing=timing, progress=False)


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Conv/linear weights (factors included) decay by ``config.weight_decay``; batch-norm parameters,
    biases, the Tucker-2 factors named in ``config.no_decay_on``, and every conv of a low-rank layer when
    ``config.factor_decay`` is not ``"factors"``, do not."""
    exempt = {
        id(w)
        for m in model.modules()
        if isinstance(m, lowrank.Tucker2Conv2d)
        for name, w in m.factor_weights().items()
        if name in config.no_decay_on
    }
    if config.factor_decay != "factors":
        exempt |= {id(c.weight) for m in model.modules() if isinstance(m, lowrank.LowRankConv2d) for c in m.convs()}
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 and id(p) not in exempt else no_decay).append(p)
    return [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast(device: torch.device, amp: bool):
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader: data_lib.BatchLoader, device: torch.device, amp: bool = False) -> torch.Tensor:
    """``[loss sum, correct, count]`` (float64, on ``device``) of ``model`` over ``loader``."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        with _autocast(device, amp):
            logits = model(x)
        sums[0] += F.cross_entropy(logits.float(), y, reduction="sum")
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += y.numel()
    return sums


def non_finite(model: nn.Module) -> list[str]:
    """Names of the parameters and floating-point buffers of ``model`` holding NaN or infinity."""
    tensors = list(model.named_parameters()) + [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
    return [name for name, t in tensors if not torch.isfinite(t).all()]


def _seeded(seed: int, epoch: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + salt)


@dataclass
class _Loaders:
    """The run's batches: training (augmented, shuffled), validation (None without a split), test."""

    train: data_lib.BatchLoader
    val: data_lib.BatchLoader | None
    test: data_lib.BatchLoader
    sizes: dict[str, int]
    source: str


def _loaders(config: TrainConfig, options: RunOptions, device: torch.device, ctx: DistContext, show: bool) -> _Loaders:
    """Load the data set, hold out the validation split, draw the training subset, shard over processes."""
    dataset = data_lib.load(config.dataset, options.data_dir, progress=show)
    train_idx, val_idx = data_lib.train_val_split(dataset.y_train, config.val_split)
    if config.subset is not None:
        if config.subset > len(train_idx):
            raise ConfigError(
                f"subset {config.subset} is larger than the {len(train_idx)} training images left "
                f"after holding out {config.val_split} for validation"
            )
        train_idx = train_idx[data_lib.class_balanced_subset(dataset.y_train[train_idx], config.subset, config.seed)]
    test_idx = torch.arange(len(dataset.y_test))
    if config.test_subset is not None:
        test_idx = data_lib.class_balanced_subset(dataset.y_test, config.test_subset, config.seed)
    if config.batch_size // ctx.world_size > len(train_idx):
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {len(train_idx)} training images")
    norm = {"mean": dataset.mean, "std": dataset.std, "device": device}

    def evaluation(x: torch.Tensor, y: torch.Tensor) -> data_lib.BatchLoader:
        return data_lib.BatchLoader(
            x[ctx.rank :: ctx.world_size], y[ctx.rank :: ctx.world_size], _EVAL_BATCH, shuffle=False, augment=False, **norm
        )

    train = data_lib.BatchLoader(
        dataset.x_train[train_idx],
        dataset.y_train[train_idx],
        config.batch_size // ctx.world_size,
        shuffle=True,
        augment=True,
        seed=config.seed,
        drop_last=True,
        rank=ctx.rank,
        world_size=ctx.world_size,
        **norm,
    )
    val = evaluation(dataset.x_train[val_idx], dataset.y_train[val_idx]) if len(val_idx) else None
    test = evaluation(dataset.x_test[test_idx], dataset.y_test[test_idx])
    sizes = {"train_images": len(train_idx), "val_images": len(val_idx), "test_images": len(test_idx)}
    return _Loaders(train, val, test, sizes, dataset.source)


@dataclass
class _State:
    """What a checkpoint restores: the model, optimizer, scheduler, history and time spent so far."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: list[dict[str, Any]]
    epoch: int = 0
    wall_before: float = 0.0
    resumptions: int = 0

    def save(self, config: TrainConfig, path: Path, resumed_at: float) -> None:
        checkpoint.save_atomic(
            {
                "config_hash": config.hash,
                "epoch": self.epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": self.history,
                "wall_seconds": self.wall_before + time.time() - resumed_at,
                "resumptions": self.resumptions,
            },
            path,
        )

    def restore(self, saved: dict[str, Any], source: Path) -> None:
        """Continue from ``saved`` (a checkpoint checked by :func:`.checkpoint.check`, read from
        ``source``); :class:`.run_folder.RunFolderError` in one line if its tensors do not fit this model."""
        try:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # torch lists every key: keep its first line
            first = str(e).strip().splitlines()
            raise run_folder.RunFolderError(
                f"{source} does not fit the model and optimizer of this config ({first[0] if first else type(e).__name__}); "
                "pass --force to start this run over"
            ) from None
        self.history, self.epoch, self.wall_before = saved["history"], saved["epoch"], saved["wall_seconds"]
        self.resumptions = saved.get("resumptions", 0) + 1  # this start is one more


def _new_state(config: TrainConfig, model: nn.Module, device: torch.device, channels_last: bool, steps_per_epoch: int) -> _State:
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        _param_groups(model, config),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )
    total, warmup = steps_per_epoch * config.epochs, round(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config.schedule, s, total, warmup))
    return _State(model, optimizer, scheduler, [])


class _Diverged(Exception):
    def __init__(self, step: int | None, reason: str) -> None:
        super().__init__(reason)
        self.step, self.reason = step, reason


def _train_epoch(
    config: TrainConfig,
    state: _State,
    train_model: nn.Module,
    loaders: _Loaders,
    options: RunOptions,
    device: torch.device,
    show: bool,
) -> tuple[torch.Tensor, float]:
    """One epoch of SGD; returns ``[ce sum, reg sum, correct, count, Frobenius decay sum]`` (float64) and the
    penalty weight used."""
    epoch = state.epoch
    loaders.train.set_epoch(epoch)
    srip_gen = _seeded(config.seed, epoch, salt=7)
    reg_weight = config.reg_weight * reg_factor(config.reg_schedule, epoch, config.epochs)
    train_model.train()
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    frobenius = config.factor_decay == "frobenius"
    decay = torch.zeros((), device=device)
    bar = tqdm(loaders.train, desc=f"epoch {epoch + 1}/{config.epochs}", disable=None if show else True, leave=False)
    last_step = len(loaders.train) - 1
    for step, (x, y) in enumerate(bar):
        if options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, options.amp), _recomputing(state.model, options):
            logits = train_model(x)
        ce = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        reg = penalty(state.model, config.reg, reg_weight, config.reg_on, per_rank=config.reg_per_rank, generator=srip_gen)
        loss = ce + reg
        if frobenius:
            decay = frobenius_decay(state.model, config.weight_decay)
            loss = loss + decay
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        with torch.no_grad():
            n = float(y.numel())
            sums += torch.stack(
                [
                    ce.detach().double() * n,
                    reg.detach().double() * n,
                    (logits.argmax(1) == y).sum().double(),
                    torch.tensor(n, device=device, dtype=torch.float64),
                    decay.detach().double() * n,
                ]
            )
        if step % _NAN_CHECK_EVERY == 0 or step == last_step:
            if not math.isfinite(loss.item()):
                raise _Diverged(
                    step + 1,
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                    f"(cross-entropy {ce.item():.4g}, regularization {reg.item():.4g})",
                )
            if show:
                bar.set_postfix(loss=f"{ce.item():.3f}", reg=f"{reg.item():.3g}")
    return sums, reg_weight


def _recomputing(model: nn.Module, options: RunOptions) -> contextlib.AbstractContextManager:
    """The context in which low-rank layers recompute (:mod:`elrt_core.lowrank.recompute`); none
    for a compiled model, whose compiler chooses what to recompute."""
    return contextlib.nullcontext() if options.compile else lowrank.recomputing(model)


def _recompute_levels(model: nn.Module) -> list[str]:
    """The recompute levels the model's low-rank layers run at (empty for a dense model), for provenance."""
    return sorted({m.recompute for m in model.modules() if isinstance(m, lowrank.LowRankConv2d)})


def _epoch_row(
    config: TrainConfig,
    state: _State,
    loaders: _Loaders,
    ctx: DistContext,
    options: RunOptions,
    device: torch.device,
    sums: torch.Tensor,
    reg_weight: float,
    t0: float,
    train_seconds: float,
) -> dict[str, Any]:
    """Evaluate after an epoch and return its history row (``val_*`` only with a validation split)."""
    sums = distributed.all_reduce_sum(ctx, sums)
    splits = {"test": loaders.test, **({"val": loaders.val} if loaders.val is not None else {})}
    evals = {
        k: distributed.all_reduce_sum(ctx, evaluate(state.model, loader, device, options.amp)) for k, loader in splits.items()
    }
    row = {
        "epoch": state.epoch + 1,
        "train_loss": sums[0].item() / sums[3].item(),
        "reg_loss": sums[1].item() / sums[3].item(),
        "train_top1": 100.0 * sums[2].item() / sums[3].item(),
    }
    if config.factor_decay == "frobenius":
        row["decay_loss"] = sums[4].item() / sums[3].item()
    for k in ("val", "test"):
        if k in evals:
            row |= {
                f"{k}_loss": evals[k][0].item() / evals[k][2].item(),
                f"{k}_top1": 100.0 * evals[k][1].item() / evals[k][2].item(),
            }
    row |= {
        "lr": state.optimizer.param_groups[0]["lr"],
        "reg_weight": reg_weight,
        "epoch_seconds": round(time.time() - t0, 3),
        "images_per_s": round(sums[3].item() / train_seconds, 1),
    }
    factors = orthogonality(state.model)
    if factors:
        row["orthogonality"] = factors
    return row


def _check_finite(state: _State, row: dict[str, Any]) -> None:
    """Raise :class:`_Diverged` if a parameter, buffer or loss of the finished epoch is not finite."""
    bad = non_finite(state.model)
    losses = [k for k in ("train_loss", "val_loss", "test_loss") if k in row and not math.isfinite(row[k])]
    if bad or losses:
        named = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        what = "; ".join(
            x for x in (f"non-finite tensors {named}" if bad else "", f"non-finite {', '.join(losses)}" if losses else "") if x
        )
        raise _Diverged(None, f"{what} after epoch {row['epoch']}")


def fit(config: TrainConfig, options: RunOptions | None = None, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``config`` in ``options.out`` (default :class:`RunOptions`) and return its record (see
    :mod:`.run_folder` for what an existing folder leads to: a finished run of the same config is
    returned without training). ``job``: the batch job that runs it (executor, job id, visible GPUs),
    for the record's provenance (:mod:`elrt_core.study.executors`)."""
    options = options or RunOptions()
    started = time.time()
    device = resolve_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    ctx = distributed.setup(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    try:
        if config.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size {config.batch_size} must be divisible by the {ctx.world_size} processes")
        with run_folder.claim(Path(options.out), config, resume=options.resume, force=options.force, lock=ctx.is_main) as claim:
            if claim.action == "reuse":
                if ctx.is_main and not options.quiet:
                    print(f"{options.out} already holds the finished run of this config: reusing it (--force retrains)")
                return claim.record.data
            return _fit(config, options, device, ctx, started, claim.state, job)
    finally:
        distributed.teardown(ctx)


def _run_extra(
    options: RunOptions,
    device: torch.device,
    ctx: DistContext,
    source: str,
    wall_seconds: float,
    state: _State,
    job: dict[str, Any] | None,
    recompute: list[str],
) -> dict[str, Any]:
    """What a record's provenance adds about this run: wall time, resumptions (starts from a checkpoint),
    processes, data, options (``recompute``: the levels the low-rank layers ran at, :func:`_recompute_levels`),
    and the batch job that ran it."""
    return {
        "train_wall_seconds": round(wall_seconds, 3),
        "resumed": state.resumptions > 0,
        "resumptions": state.resumptions,
        "world_size": ctx.world_size,
        "data_source": source,
        "run_options": {
            "amp": options.amp and device.type == "cuda",
            "channels_last": options.channels_last,
            "compile": options.compile,
            "recompute": recompute,
        },
        **({"notes": list(options.notes)} if options.notes else {}),
        **({"job": job} if job is not None else {}),
    }


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One epoch's progress line: losses, validation and test top-1, seconds and throughput."""
    val = f"val top-1 {row['val_top1']:.2f}%  " if "val_top1" in row else ""
    return (
        f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f}  reg {row['reg_loss']:.4g}  "
        f"{val}test top-1 {row['test_top1']:.2f}%  {row['epoch_seconds']:.1f}s  {row['images_per_s']:.0f} img/s"
    )


def _start_state(
    config: TrainConfig,
    options: RunOptions,
    device: torch.device,
    steps_per_epoch: int,
    saved: dict[str, Any] | None,
    show: bool,
) -> tuple[_State, lowrank.ConversionReport]:
    """The run's model (built, converted, its recomputation set) in a fresh training state, or in the
    state of the checkpoint ``saved``; and the model's conversion report (its cost)."""
    out = Path(options.out)
    model = lowrank.set_recompute(build_model(config, dense_runs=out.parent), options.recompute)
    conversion = lowrank.report(model, config.input_shape)
    state = _new_state(config, model, device, options.channels_last, steps_per_epoch)
    if saved is not None:
        state.restore(saved, out / checkpoint.CHECKPOINT_FILE)
        if show:
            print(f"resuming {out} at epoch {state.epoch + 1}/{config.epochs}")
    return state, conversion


def _training_model(model: nn.Module, ctx: DistContext, compiled: bool) -> nn.Module:
    """``model`` as the training step calls it: wrapped in DDP when distributed, then compiled if asked."""
    train_model = DistributedDataParallel(model) if ctx.enabled else model
    return torch.compile(train_model) if compiled else train_model


def _diverged_error(config: TrainConfig, state: _State, e: _Diverged, ckpt_path: Path) -> TrainingDiverged:
    """The one-line error of a run that diverged: why, which checkpoint is kept, and what to change."""
    kept = f"the last good checkpoint (epoch {state.epoch}) is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was kept"
    return TrainingDiverged(
        f"{config.name} diverged: {e.reason}; {kept}; record marked diverged. Lower --lr or --reg-weight (a new config)"
    )


def _fit(
    config: TrainConfig,
    options: RunOptions,
    device: torch.device,
    ctx: DistContext,
    started: float,
    saved: dict[str, Any] | None,
    job: dict[str, Any] | None,
) -> dict[str, Any]:
    out = Path(options.out)
    ckpt_path = out / checkpoint.CHECKPOINT_FILE
    show = ctx.is_main and not options.quiet
    loaders = _loaders(config, options, device, ctx, show)
    state, conversion = _start_state(config, options, device, len(loaders.train), saved, show)
    train_model = _training_model(state.model, ctx, options.compile)
    resumed_at = time.time()

    def record(status: str, divergence: dict | None = None) -> dict[str, Any]:
        ended = time.time()
        wall = state.wall_before + ended - resumed_at
        levels = [] if options.compile else _recompute_levels(state.model)  # compiled: no recomputation context
        extra = _run_extra(options, device, ctx, loaders.source, wall, state, job, levels)
        prov = records.provenance(device, seed=config.seed, profile=options.profile, started=started, ended=ended, extra=extra)
        return records.build(
            config,
            status=status,
            history=state.history,
            sizes=loaders.sizes,
            cost=conversion.to_dict(),
            provenance=prov,
            divergence=divergence,
        )

    try:
        while state.epoch < config.epochs:
            t0 = time.time()
            sums, reg_weight = _train_epoch(config, state, train_model, loaders, options, device, show)
            row = _epoch_row(config, state, loaders, ctx, options, device, sums, reg_weight, t0, time.time() - t0)
            _check_finite(state, row)
            state.history.append(row)
            state.epoch += 1
            if show:
                tqdm.write(_epoch_line(row, config.epochs))
            if ctx.is_main:
                state.save(config, ckpt_path, resumed_at)
    except _Diverged as e:
        if ctx.is_main:
            records.write_json(
                out / records.RECORD_FILE, record("diverged", {"epoch": state.epoch + 1, "step": e.step, "reason": e.reason})
            )
        raise _diverged_error(config, state, e, ckpt_path) from None
    if not distributed.replicas_agree(ctx, state.model):
        raise RuntimeError("the DDP replicas hold different parameters at the end of training")
    result = record("finished")
    result["provenance"]["replicas_agree"] = True
    if ctx.is_main:
        checkpoint.save_atomic(state.model.state_dict(), out / checkpoint.WEIGHTS_FILE)
        records.write_json(out / records.RECORD_FILE, result)
    return result
