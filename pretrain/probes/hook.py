"""``probe=dict(every=K, tasks=[...])``: probe the frozen backbone after every K-th epoch and the last.

Runs after the epoch's log line (the ``probe`` line follows it) and before its checkpoint (which keeps
this hook's totals). Writes one ``probe`` line per probe to ``log.jsonl`` (schema in docs/pretrain.md,
"Probes") and the last one's results into the backbone's meta (``meta["probe"]``). Its cost is logged
apart from the method's: the method's cumulative cost (``relative_cost_flops``, the summary's
denominator) never includes it. Under DDP rank 0 probes while the others wait at the checkpoint's
collective (see :func:`pretrain.probes.build.build_prober` for the per-rank budget).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from dar_common.workdir import LOG_FILE, append_jsonl

from ..cost import TRAIN_FLOPS_PER_FORWARD
from ..hooks import Hook
from .build import ProbeConfig, build_prober

if TYPE_CHECKING:
    from ..trainer import Trainer

META_FIELDS = ("epoch", "knn_top1", "dense_miou", "knn", "dense")


class ProbeHook(Hook):
    def __init__(self, cfg: ProbeConfig):
        self.cfg = cfg
        self.prober = None
        self.totals = {"probe_flops_total": 0.0, "probe_wall_s_total": 0.0}
        self.last: dict[str, Any] | None = None
        self.warned = False

    def before_train(self, trainer: Trainer) -> None:
        """Fix the probe's images and counts from the run's planned cost (the same after a resume)."""
        plan = trainer.plan
        planned = plan.flops_cost * TRAIN_FLOPS_PER_FORWARD * trainer.fwd * plan.ref_epochs * plan.num_samples
        self.prober, self.plan = build_prober(self.cfg, trainer.model, trainer.cfg.raw["data"],
                                              train_set=trainer.train_set, val_set=trainer.val_set,
                                              run_train_flops=planned, epochs=plan.epochs,
                                              world_size=trainer.env.world, workers=trainer.cfg.data.num_workers)
        if self.last is not None:
            trainer.meta_extra["probe"] = {k: self.last[k] for k in META_FIELDS}

    def after_epoch(self, trainer: Trainer) -> None:
        epoch = trainer.progress.epochs_done
        if epoch not in self.plan["probe_epochs"] or not trainer.env.main:
            return
        result = self.prober(trainer.model)
        self.totals["probe_flops_total"] += result["probe_flops"]
        self.totals["probe_wall_s_total"] += result["probe_wall_s"]
        p, summary = trainer.progress, trainer.summary()
        line = {"type": "probe", "epoch": epoch, "global_step": p.global_step,
                "knn_top1": result["knn_top1"], "dense_miou": result["dense_miou"],
                "relative_cost_flops": summary["relative_cost_flops"],
                "relative_cost_samples": summary["relative_cost_samples"],
                "cum_train_flops": p.train_flops, "cum_selection_flops": p.selection_flops,
                "probe_flops": result["probe_flops"], "probe_wall_s": result["probe_wall_s"], **self.totals,
                "probe_budget_flops": self.plan["budget_flops"], "knn": result["knn"], "dense": result["dense"]}
        append_jsonl(trainer.work_dir / LOG_FILE, line)
        share = self.totals["probe_wall_s_total"] / max(p.wall_s, 1e-9)
        if self.cfg.budget and share > self.cfg.budget and not self.warned:
            self.warned = True  # the bound is on FLOPs; small models on a CPU spend more time per FLOP probing
            print(f"warning: probes took {100 * share:.0f}% of the training time so far (probe.budget "
                  f"{100 * self.cfg.budget:.0f}% bounds their FLOPs); raise probe.every to probe less often",
                  file=sys.stderr, flush=True)
        self.last = line
        trainer.meta_extra["probe"] = {k: line[k] for k in META_FIELDS}

    def state_dict(self) -> dict[str, Any]:
        return {"totals": dict(self.totals), "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.totals, self.last = dict(state["totals"]), state["last"]
