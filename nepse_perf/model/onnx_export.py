"""Export the trained models to ONNX, the serving format (no pickle anywhere).

Tree models (scikit-learn's ``HistGradientBoostingClassifier`` and LightGBM) are written
by :func:`trees_to_onnx` as one ``ai.onnx.ml`` ``TreeEnsemble`` node (opset 5) plus a
sigmoid, in float64 or float32. We write the graph ourselves because the converters fail
here: skl2onnx 1.20 emits a Python ``bool`` into an integer attribute that protobuf 7
rejects ("Expected an int, got a boolean"), and both skl2onnx and onnxmltools produce the
older ``TreeEnsembleClassifier``, whose probabilities ONNX Runtime computes in float32
only. With ``TreeEnsemble`` the float64 graph reproduces the native prediction; the
float32 graph shows the threshold-flip pitfall (a feature equal to, or within float32
rounding of, a split threshold can take the other branch).

The MLP goes through ``torch.onnx.export`` (the dynamo exporter, with the standardisation
and the sigmoid inside the graph).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ONNX_INPUT",
    "ONNX_OUTPUT",
    "ONNX_SCORE",
    "TreeArrays",
    "forest_trees",
    "hgb_trees",
    "lightgbm_trees",
    "mlp_to_onnx",
    "trees_to_onnx",
]

#: Name of the graph's input (rows x features) and outputs (rows x 1 each): the probability
#: of "up", and the raw score before the link function (log-odds for boosted trees and the
#: MLP, the probability itself for the forest).
ONNX_INPUT = "features"
ONNX_OUTPUT = "prob_up"
ONNX_SCORE = "raw_score"

_ML_OPSET = 5
_OPSET = 21


@dataclass(frozen=True)
class TreeArrays:
    """One binary tree as flat arrays: node i splits on ``feature[i] <= threshold[i]``.

    ``left``/``right`` are child node indices (the "true"/"false" branches), ``is_leaf``
    marks leaves whose output is ``value``; ``missing_left`` says where a NaN goes.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray


def hgb_trees(model: Any) -> tuple[list[TreeArrays], float]:
    """The trees and baseline (raw log-odds) of a fitted binary ``HistGradientBoostingClassifier``.

    Categorical splits are not supported (this project's features are all numeric):
    ``ValueError`` if one is found.
    """
    if model.n_trees_per_iteration_ != 1:
        raise ValueError("only binary HistGradientBoostingClassifier models are supported")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"].astype(bool)):
            raise ValueError("categorical splits are not supported by this exporter")
        trees.append(
            TreeArrays(
                feature=nodes["feature_idx"].astype(np.int64),
                threshold=nodes["num_threshold"].astype(np.float64),
                left=nodes["left"].astype(np.int64),
                right=nodes["right"].astype(np.int64),
                is_leaf=nodes["is_leaf"].astype(bool),
                value=nodes["value"].astype(np.float64),
                missing_left=nodes["missing_go_to_left"].astype(bool),
            )
        )
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    return trees, baseline


def forest_trees(model: Any) -> tuple[list[TreeArrays], float]:
    """The trees of a fitted binary scikit-learn ``RandomForestClassifier``, leaves = P(up) / n.

    Summing the leaves of all trees gives the forest's average probability of class 1
    (scikit-learn averages the trees' class fractions). scikit-learn's trees compare
    float32 inputs, so export these with ``dtype=np.float32`` and ``transform="none"``.
    """
    if list(model.classes_) != [0, 1]:
        raise ValueError(f"expected classes [0, 1], got {list(model.classes_)}")
    n = len(model.estimators_)
    trees = []
    for est in model.estimators_:
        t = est.tree_
        value = t.value[:, 0, :]
        p_up = value[:, 1] / value.sum(axis=1)
        leaf = t.children_left < 0
        trees.append(
            TreeArrays(
                feature=np.where(leaf, 0, t.feature).astype(np.int64),
                threshold=np.where(leaf, 0.0, t.threshold).astype(np.float64),
                left=np.where(leaf, 0, t.children_left).astype(np.int64),
                right=np.where(leaf, 0, t.children_right).astype(np.int64),
                is_leaf=leaf,
                value=p_up / n,
                missing_left=np.asarray(
                    getattr(t, "missing_go_to_left", np.zeros(len(leaf)))
                ).astype(bool),
            )
        )
    return trees, 0.0


def lightgbm_trees(model: Any) -> tuple[list[TreeArrays], float]:
    """The trees of a fitted binary ``lightgbm.LGBMClassifier`` (baseline 0: LightGBM folds it in).

    Only numerical ``<=`` splits are supported; ``ValueError`` otherwise.
    """
    dump = model.booster_.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise ValueError("only binary LightGBM models are supported")
    return [_lightgbm_tree(info["tree_structure"]) for info in dump["tree_info"]], 0.0


def _lightgbm_tree(root: dict[str, Any]) -> TreeArrays:
    """Flatten one tree of LightGBM's ``dump_model()`` (nested dicts) into :class:`TreeArrays`."""
    cols: dict[str, list[Any]] = {k: [] for k in TreeArrays.__dataclass_fields__}
    stack: list[tuple[dict[str, Any], int, str]] = [(root, -1, "")]
    while stack:
        node, parent, side = stack.pop()
        i = len(cols["feature"])
        if parent >= 0:
            cols[side][parent] = i
        leaf = "leaf_value" in node
        if not leaf and node.get("decision_type", "<=") != "<=":
            raise ValueError(f"unsupported LightGBM split {node.get('decision_type')!r}")
        cols["feature"].append(0 if leaf else int(node["split_feature"]))
        cols["threshold"].append(0.0 if leaf else float(node["threshold"]))
        cols["left"].append(0)
        cols["right"].append(0)
        cols["is_leaf"].append(leaf)
        cols["value"].append(float(node["leaf_value"]) if leaf else 0.0)
        cols["missing_left"].append(False if leaf else bool(node.get("default_left", True)))
        if not leaf:
            stack.append((node["right_child"], i, "right"))
            stack.append((node["left_child"], i, "left"))
    kinds = {
        "feature": np.int64,
        "threshold": np.float64,
        "left": np.int64,
        "right": np.int64,
        "is_leaf": bool,
        "value": np.float64,
        "missing_left": bool,
    }
    return TreeArrays(**{k: np.array(v, dtype=kinds[k]) for k, v in cols.items()})


@dataclass
class _NodeTable:
    """The flat node and leaf arrays of a ``TreeEnsemble`` node, filled one tree at a time."""

    roots: list[int] = field(default_factory=list)
    feat: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    miss: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def add_tree(self, t: TreeArrays, bias: float) -> None:
        """Append tree ``t``, ``bias`` added to its leaves (the baseline, on the first tree)."""
        node_base = len(self.feat)
        split_ids = np.flatnonzero(~t.is_leaf)
        leaf_ids = np.flatnonzero(t.is_leaf)
        node_pos = {int(n): node_base + k for k, n in enumerate(split_ids)}
        leaf_pos = {int(n): len(self.leaf_weights) + k for k, n in enumerate(leaf_ids)}
        self.leaf_weights.extend((t.value[leaf_ids] + bias).tolist())
        if len(split_ids) == 0:  # a single leaf: a dummy split with both branches to it
            pos = leaf_pos[int(leaf_ids[0])]
            self._add_split(node_base, 0, 0.0, (pos, 1), (pos, 1), 1)
            return
        self.roots.append(node_pos[0] if 0 in node_pos else node_base)
        for n in split_ids:
            branches = []
            for child in (int(t.left[n]), int(t.right[n])):
                leaf = bool(t.is_leaf[child])
                branches.append((leaf_pos[child], 1) if leaf else (node_pos[child], 0))
            self._add_split(
                None,
                int(t.feature[n]),
                float(t.threshold[n]),
                *branches,
                int(bool(t.missing_left[n])),
            )

    def _add_split(
        self,
        root: int | None,
        feature: int,
        threshold: float,
        true: tuple[int, int],
        false: tuple[int, int],
        missing_left: int,
    ) -> None:
        if root is not None:
            self.roots.append(root)
        self.feat.append(feature)
        self.splits.append(threshold)
        self.true_ids.append(true[0])
        self.true_leaf.append(true[1])
        self.false_ids.append(false[0])
        self.false_leaf.append(false[1])
        self.miss.append(missing_left)

    def node(self, tree_input: str, dtype: np.dtype) -> Any:
        """The ``ai.onnx.ml`` ``TreeEnsemble`` node (sum of the trees, no transform)."""
        from onnx import helper, numpy_helper

        return helper.make_node(
            "TreeEnsemble",
            [tree_input],
            [ONNX_SCORE],
            domain="ai.onnx.ml",
            n_targets=1,
            aggregate_function=1,  # SUM
            post_transform=0,  # NONE: the sigmoid is its own node
            tree_roots=self.roots,
            nodes_modes=numpy_helper.from_array(np.zeros(len(self.feat), dtype=np.uint8)),  # LEQ
            nodes_featureids=self.feat,
            nodes_splits=numpy_helper.from_array(np.asarray(self.splits, dtype=dtype)),
            nodes_truenodeids=self.true_ids,
            nodes_trueleafs=self.true_leaf,
            nodes_falsenodeids=self.false_ids,
            nodes_falseleafs=self.false_leaf,
            nodes_missing_value_tracks_true=self.miss,
            leaf_targetids=[0] * len(self.leaf_weights),
            leaf_weights=numpy_helper.from_array(np.asarray(self.leaf_weights, dtype=dtype)),
        )


def _tree_model(
    table: _NodeTable, n_features: int, dtype: np.dtype, in_dtype: np.dtype, transform: str
) -> bytes:
    """The checked, serialised model around ``table``: optional input cast, trees, link."""
    import onnx
    from onnx import TensorProto, helper

    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    in_elem = TensorProto.DOUBLE if in_dtype == np.float64 else TensorProto.FLOAT
    nodes = []
    tree_input = ONNX_INPUT
    if in_elem != elem:
        tree_input = "features_cast"
        nodes.append(helper.make_node("Cast", [ONNX_INPUT], [tree_input], to=elem))
    link = "Sigmoid" if transform == "sigmoid" else "Identity"
    graph = helper.make_graph(
        [
            *nodes,
            table.node(tree_input, dtype),
            helper.make_node(link, [ONNX_SCORE], [ONNX_OUTPUT]),
        ],
        "nepse_direction_trees",
        [helper.make_tensor_value_info(ONNX_INPUT, in_elem, [None, n_features])],
        [
            helper.make_tensor_value_info(ONNX_OUTPUT, elem, [None, 1]),
            helper.make_tensor_value_info(ONNX_SCORE, elem, [None, 1]),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", _OPSET),
            helper.make_opsetid("ai.onnx.ml", _ML_OPSET),
        ],
        producer_name="nepse_perf",
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString()


def trees_to_onnx(
    trees: list[TreeArrays],
    baseline: float,
    n_features: int,
    *,
    dtype: type = np.float64,
    transform: str = "sigmoid",
    input_dtype: type | None = None,
) -> bytes:
    """A serialised ONNX model: probability of "up" = sigmoid(baseline + sum of tree outputs).

    ``transform="none"`` leaves out the sigmoid (a forest whose leaves already sum to a
    probability). ``input_dtype`` (default ``dtype``) float32 with ``dtype`` float64 rounds
    the inputs to float32 and then compares them with float64 thresholds, as scikit-learn's
    decision trees do.
    The input ``features`` is (rows x ``n_features``) of ``dtype`` (float64 or float32);
    thresholds and leaf values are stored in ``dtype`` too. The baseline is added to the
    first tree's leaves, so the float64 graph sums in the order scikit-learn and LightGBM
    do. Outputs (rows x 1 of ``dtype``): ``prob_up`` and ``raw_score`` (the sum before the
    sigmoid). ONNX Runtime's float64 sigmoid is vectorised and its last bit can depend on
    the batch size; :func:`~nepse_perf.model.predict_proba` therefore applies the link
    itself to ``raw_score`` (SciPy's ``expit``, as scikit-learn does), which makes the
    float64 trees bit-for-bit equal to the native model and to any batching.
    """
    dtype = np.dtype(dtype)
    in_dtype = np.dtype(input_dtype or dtype)
    if dtype not in (np.float64, np.float32) or in_dtype not in (np.float64, np.float32):
        raise ValueError(f"dtypes must be float64 or float32, got {dtype} and {in_dtype}")
    if transform not in ("sigmoid", "none"):
        raise ValueError(f"transform must be 'sigmoid' or 'none', got {transform!r}")
    if not trees:
        raise ValueError("no trees to export")
    table = _NodeTable()
    for k, tree in enumerate(trees):
        table.add_tree(tree, baseline if k == 0 else 0.0)
    return _tree_model(table, n_features, dtype, in_dtype, transform)


def mlp_to_onnx(mlp: Any, n_features: int) -> bytes:
    """Export a fitted :class:`~nepse_perf.model.mlp.MLPClassifier` with ``torch.onnx.export``.

    The graph takes float32 raw features (rows x ``n_features``), standardises them with the
    training mean and scale, runs the network and applies the sigmoid: outputs ``prob_up``
    and ``raw_score`` (the logit), rows x 1, float32. The exporter's known noise (a log line per torchvision operator it
    cannot register, and a deprecation warning from torch's own pytree module) is silenced
    for this call only.
    """
    import torch

    class Served(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp.module_
            self.register_buffer("mean", torch.tensor(mlp.mean_, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(mlp.scale_, dtype=torch.float32))

        def forward(self, x: Any) -> Any:
            logit = self.net((x - self.mean) / self.scale)
            return torch.sigmoid(logit), logit

    served = Served().eval()
    example = torch.zeros((2, n_features), dtype=torch.float32)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..." x4
    try:
        with warnings.catch_warnings():
            # torch 2.13's exporter calls its own deprecated pytree API (LeafSpec): not ours
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            program = torch.onnx.export(
                served,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT, ONNX_SCORE],
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("rows")},),
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    # the exporter records each node's Python stack trace (absolute file paths, line numbers)
    # and FX provenance: drop them, so the file depends only on the network, not on where the
    # package lives or how this module is laid out
    for graph_nodes in (proto.graph.node, *(f.node for f in proto.functions)):
        for node in graph_nodes:
            del node.metadata_props[:]
            node.doc_string = ""
    buf = io.BytesIO()
    buf.write(proto.SerializeToString())
    return buf.getvalue()
