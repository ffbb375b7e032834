"""Evaluation metrics: retrieval (mAP@all, mAP@K, P@K, Acc@K, R@K, MdR) and on-the-fly (m@A, m@B)."""

from sgvu.metrics.on_the_fly import kendall_tau_distance
from sgvu.metrics.on_the_fly import on_the_fly_curves
from sgvu.metrics.on_the_fly import on_the_fly_metrics
from sgvu.metrics.on_the_fly import ordering_to_ranks
from sgvu.metrics.retrieval import DEFAULT_BLOCK_SIZE
from sgvu.metrics.retrieval import DEFAULT_KS
from sgvu.metrics.retrieval import NoRelevantWarning
from sgvu.metrics.retrieval import instance_metrics
from sgvu.metrics.retrieval import per_query_metrics
from sgvu.metrics.retrieval import ranks
from sgvu.metrics.retrieval import retrieval_metrics
from sgvu.metrics.retrieval import summarize
from sgvu.metrics.retrieval import topk
