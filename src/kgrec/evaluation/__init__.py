"""Evaluation protocols: CTR (AUC, accuracy), top-K ranking and KG completion."""

from kgrec.evaluation.ctr import accuracy, auc, evaluate_ctr
from kgrec.evaluation.kg import evaluate_kg, kg_metrics, ranks_from_scores, relation_categories
from kgrec.evaluation.topk import evaluate_topk, positives_csr, rank_topk, topk_metrics

__all__ = [
    "accuracy",
    "auc",
    "evaluate_ctr",
    "evaluate_kg",
    "evaluate_topk",
    "kg_metrics",
    "positives_csr",
    "rank_topk",
    "ranks_from_scores",
    "relation_categories",
    "topk_metrics",
]
