"""FM and CKE trained for CTR prediction: the log loss on labelled pairs (MKR Table 2's protocol).

The MKR paper (``shared/papers/000_*``, Section 4.2 and Table 2) compares LibFM and CKE under
its CTR protocol: labelled ``(user, item, label)`` rows (each positive with one sampled
negative), test AUC and accuracy of ``sigmoid(score) >= 0.5``. :mod:`kgrec.models.fm` and
:mod:`kgrec.models.cke` are trained with the BPR loss for top-K ranking, whose scores have no
calibrated offset, so their accuracy at the 0.5 threshold would say nothing. These two
variants keep the models' scoring functions unchanged and replace the ranking loss with the
log loss on the ``ctr`` sampler's labelled rows (readings, the papers give no CTR loss):

* ``fm-ctr``: FM Eq. 1 as :class:`~kgrec.models.fm.FM` (user, item and the normalised bag of
  the item's KG entities, LibFM's input in MKR Section 4.2) read as a logit;
  loss ``BCE(y(x), label) + l2 * mean_b(||v_u||^2 + q_i)`` (the pair's factors, weighted by
  ``x^2``, as FM's L2 term on one item instead of two).
* ``cke-ctr``: CKE's ``u^T (eta_i + v_{a(i)})`` (CKE Section 4.4) read as a logit;
  loss ``BCE + l2 * mean_b(||u||^2 + ||item(i)||^2)``; the ``kg`` task (TransR) is CKE's.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kgrec.models.base import register_model
from kgrec.models.bprmf import sq_norms
from kgrec.models.cke import CKE
from kgrec.models.fm import FM


def _log_loss(logit: Tensor, labels: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logit, labels.to(logit.dtype))


@register_model("fm-ctr", paper="Rendle, ICDM 2010 (FM; log loss on labelled pairs, as LibFM "
                "in MKR Table 2)")
class FMCTR(FM):
    """:class:`~kgrec.models.fm.FM` with the log loss on the ``ctr`` sampler's rows."""

    task_samplers: ClassVar[dict[str, str]] = {"rec": "ctr"}
    ctr_output: ClassVar[bool] = True

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"fm-ctr has no task {task!r}")
        users, items = batch["users"], batch["items"]
        vu, bu = self.user_emb(users), self.user_bias(users).squeeze(-1)
        s, q, lin = self.item_side(items)
        loss = _log_loss(self._score(vu, bu, s, q, lin), batch["labels"])
        if self.l2 > 0:
            loss = loss + self.l2 * (vu.pow(2).sum(-1) + q).mean()
        return loss


@register_model("cke-ctr", paper="Zhang et al., KDD 2016 (CKE without text and images; log "
                "loss on labelled pairs, as in MKR Table 2)")
class CKECTR(CKE):
    """:class:`~kgrec.models.cke.CKE` whose ``rec`` task is the log loss on labelled rows."""

    task_samplers: ClassVar[dict[str, str]] = {"rec": "ctr", "kg": "triples"}
    ctr_output: ClassVar[bool] = True

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            return super().forward(batch, task)
        u, v = self.user_emb(batch["users"]), self.item_vectors(batch["items"])
        loss = _log_loss((u * v).sum(-1), batch["labels"])
        if self.l2 > 0:
            loss = loss + self.l2 * sq_norms(u, v)
        return loss
