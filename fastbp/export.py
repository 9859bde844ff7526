"""Export a trained network to ONNX (needs the optional extra: pip install 'fastbp[onnx]').

    fastbp export runs/mnist-20261125-101500 -o mnist.onnx      # or, in Python:
    from fastbp.export import export_checkpoint, export_estimator, to_onnx, save

The graph takes what fastbp was fed and does what training did to it:

    input           "input"          [N, n_features]  uint8, float32 or float64: the raw rows
                                                       (MNIST: pixels 0..255 as uint8)
    preprocessing   Cast to the model's dtype, Mul by the data set's scale, then Sub mean
                    and Div std where training standardised (each only where needed)
    layers          one Gemm (x Wᵀ + b, W stored (n_out, n_in) as fastbp keeps it) and one
                    activation per layer: Sigmoid, Tanh, Relu, leaky_relu as Max(z, slope*z), Identity;
                    output Softmax(axis=1), Sigmoid, Identity, Tanh, Relu or Exp
    output          "probabilities"  [N, n_outputs]   the model's float dtype: fastbp's
                                                       feedforward (class probabilities for
                                                       softmax; [1 - p, p] for a one-unit
                                                       sigmoid output, a binary classifier)
    output          "label"          [N]              int64 class index (argmax; ties go to
                                                       the first, as numpy's), or
                                                       class_labels[index] when given (int64,
                                                       double, bool or string)

A regressor (`regression=True`) has one output instead, "predictions" [N, n_outputs].
The model's metadata_props record the preprocessing and class names as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UsageError
from .extras import require
from .nn import activations
from .files import atomic_write

DEFAULT_OPSET = 17  # onnxruntime >= 1.14 and TensorRT 8.6 run it
MIN_OPSET = 13  # Softmax over one axis, as fastbp's (older opsets flatten to 2-D first)



def _own_onnx(name):
    """Does the record write its own ONNX nodes (rather than name one op)?"""
    return activations.RECORDS[name].onnx is not activations.Activation.onnx


def _onnx():
    return require("onnx", "exporting to ONNX")


def check_opset(opset=None) -> int:
    """The opset to write: DEFAULT_OPSET, or `opset` if the installed onnx can write it."""
    onnx = _onnx()
    latest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, latest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= latest:
        raise UsageError(f"opset {opset!r} is not supported: fastbp writes opsets {MIN_OPSET} to {latest} "
                         f"(the newest the installed onnx {onnx.__version__} knows)")
    return int(opset)


def to_onnx(layers, hidden, output, *, dtype="float32", preprocess=None, class_labels=None, opset=None,
            leaky_slope=0.01, regression=False, name="fastbp", metadata=None):
    """An onnx.ModelProto computing the network; see the module docstring for the graph.

    layers       [(W (n_out, n_in), b (n_out,)), ...] host arrays, input layer first
    hidden       sigmoid, tanh, relu, leaky_relu (with leaky_slope), identity
    output       softmax, sigmoid, identity, tanh, relu, exp
    dtype        float32 or float64: the arithmetic, as the network's own
    preprocess   {"input_dtype": "uint8"|"float32"|"float64", "scale": s, "mean": m|None, "std": d|None}:
                 the network sees (input * s - m) / d. Default: input of `dtype`, unscaled.
    class_labels what "label" holds for class index i (default: i itself)
    metadata     more metadata_props, {key: string}
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    opset = check_opset(opset)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise UsageError(f"dtype must be float32 or float64, got {dtype}")
    hidden, output = activations.from_sklearn(hidden), activations.from_sklearn(output)
    acts = {}
    for role, name in (("hidden", hidden), ("output", output)):
        exportable = [n for n in activations.names(role) if activations.RECORDS[n].onnx_op or _own_onnx(n)]
        if name not in exportable:
            raise UsageError(f"{role} activation {name!r} cannot be exported: expected one of {', '.join(exportable)}")
        acts[role] = activations.make(name, role, leaky_slope)
    pre = {"input_dtype": dtype.name, "scale": 1.0, "mean": None, "std": None, **(preprocess or {})}
    in_dtype = np.dtype(pre["input_dtype"])
    layers = [(np.asarray(W, dtype), np.asarray(b, dtype)) for W, b in layers]
    if not layers:
        raise UsageError("a network needs at least one layer")
    for l, (W, b) in enumerate(layers):
        fed = layers[l - 1][0].shape[0] if l else None  # what the layer below gives it
        if W.ndim != 2 or b.shape != (W.shape[0],) or W.shape[1] != (fed or W.shape[1]):
            raise UsageError(f"layer {l + 1}: W {W.shape} and b {b.shape} do not chain into "
                             f"(n_out, {fed or 'n_in'}) and (n_out,)")
    n_in, n_out = layers[0][0].shape[1], layers[-1][0].shape[0]
    binary = output == "sigmoid" and n_out == 1 and not regression

    nodes, inits = [], []

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(nodes)}", **attrs))
        return out

    def const(cname, value, kind=None):
        if all(t.name != cname for t in inits):  # one slope shared by every leaky_relu layer
            inits.append(numpy_helper.from_array(np.asarray(value, kind or dtype), cname))
        return cname

    x = "input"
    if in_dtype != dtype:
        x = node("Cast", [x], "x_cast", to=helper.np_dtype_to_tensor_dtype(dtype))
    if float(pre["scale"]) != 1.0:
        x = node("Mul", [x, const("scale", pre["scale"])], "x_scaled")
    if pre.get("mean") is not None:
        x = node("Sub", [x, const("mean", np.broadcast_to(pre["mean"], (n_in,)))], "x_centred")
    if pre.get("std") is not None:
        x = node("Div", [x, const("std", np.broadcast_to(pre["std"], (n_in,)))], "x_standardised")

    result = "predictions" if regression else "probabilities"
    for l, (W, b) in enumerate(layers, 1):
        last = l == len(layers)
        z = node("Gemm", [x, const(f"W{l}", W), const(f"b{l}", b)], f"z{l}", transB=1)
        a = result if last and not binary else f"a{l}"
        x = acts["output" if last else "hidden"].onnx(node, const, z, a)
    if binary:  # scikit-learn's two-class output: one unit p = P(class 1), reported as [1 - p, p]
        q = node("Sub", [const("one", np.ones((1, 1))), x], "p0")
        x = node("Concat", [q, x], result, axis=1)

    outputs = [helper.make_tensor_value_info(result, helper.np_dtype_to_tensor_dtype(dtype), ["N", 2 if binary else n_out])]
    if not regression:
        index = "label" if class_labels is None else "label_index"
        node("ArgMax", [result], index, axis=1, keepdims=0)
        label_type = TensorProto.INT64
        if class_labels is not None:
            labels = np.asarray(class_labels)
            if labels.dtype.kind in "iu":
                labels = labels.astype(np.int64)
            elif labels.dtype.kind == "b":
                label_type = TensorProto.BOOL
            elif labels.dtype.kind == "f":
                labels, label_type = labels.astype(np.float64), TensorProto.DOUBLE
            else:
                labels, label_type = np.array([str(v) for v in labels], dtype=object), TensorProto.STRING
            node("Gather", [const("class_labels", labels, labels.dtype), index], "label", axis=0)
        outputs.append(helper.make_tensor_value_info("label", label_type, ["N"]))

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", helper.np_dtype_to_tensor_dtype(in_dtype), ["N", n_in])],
        outputs, initializer=inits,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastbp", producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)  # older runtimes refuse a newer IR
    meta = {
        "fastbp.hidden": hidden, "fastbp.output": output, "fastbp.dtype": dtype.name,
        "fastbp.preprocess": json.dumps({k: (np.asarray(v).tolist() if k in ("mean", "std") and v is not None else v)
                                         for k, v in pre.items()}),
    }
    if class_labels is not None:
        meta["fastbp.class_labels"] = json.dumps([str(v) for v in np.asarray(class_labels).tolist()])
    helper.set_model_props(model, {**meta, **(metadata or {})})
    onnx.checker.check_model(model, full_check=True)
    return model


def check_writable(path) -> Path:
    """UsageError (exit 2) now, before any work, for an output path that cannot be written."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")
    return path


def save(model, path) -> Path:
    """Write the model atomically: the old file or the whole new one, never half of one."""
    path = check_writable(path)
    atomic_write(path, model.SerializeToString())
    return path


def export_checkpoint(target, out, checkpoint="best", opset=None):
    """Export a run directory's best (or last) checkpoint, or a checkpoint file; returns (model, checkpoint path)."""
    from .predict import load_run

    opset = check_opset(opset)  # the cheap refusals first: nothing is loaded for a bad opset or path
    check_writable(out)
    run = load_run(target, checkpoint)
    net = run.net
    layers = [(np.asarray(W), np.asarray(b)) for W, b in zip(net.weights, net.biases)]
    meta = {"fastbp.checkpoint": str(run.path)}
    if run.class_names:
        meta["fastbp.class_names"] = json.dumps(list(run.class_names))
    model = to_onnx(layers, net.hidden_name, net.output_name, dtype=net.dtype, preprocess=dataclasses.asdict(run.preprocess),
                    opset=opset, leaky_slope=net.leaky_slope, name=Path(run.path).parent.name or "fastbp", metadata=meta)
    save(model, out)
    return model, run.path


def export_estimator(est, out=None, opset=None, input_dtype=None):
    """Export a fitted FastBPClassifier (or any estimator with scikit-learn's MLP attributes:
    coefs_ (n_in, n_out), intercepts_, activation, out_activation_, classes_). The graph's input
    has the estimator's dtype (it casts X to that) unless `input_dtype` says otherwise, unscaled;
    "label" holds classes_. Writes `out` when given; returns the model."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "coefs_")
    dtype = np.dtype(est.coefs_[0].dtype)
    classes = getattr(est, "classes_", None)
    model = to_onnx(
        [(np.asarray(c).T, np.asarray(b)) for c, b in zip(est.coefs_, est.intercepts_)],
        est.activation, est.out_activation_, dtype=dtype,
        preprocess={"input_dtype": np.dtype(input_dtype or dtype).name, "scale": 1.0},
        class_labels=classes, opset=opset, leaky_slope=getattr(est, "leaky_slope", 0.01),
        regression=classes is None, name=type(est).__name__,
    )
    if out is not None:
        save(model, out)
    return model


# -- skl2onnx (not a dependency) ----------------------------------------------------------------------------
def register_skl2onnx():
    """Let `skl2onnx.to_onnx(clf, X[:1])` convert a FastBPClassifier, with skl2onnx's options
    (zipmap, nocl). False when skl2onnx is not installed."""
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.shape_calculators.linear_classifier import calculate_linear_classifier_output_shapes
    except ImportError:
        return False
    from .estimator import FastBPClassifier

    update_registered_converter(FastBPClassifier, "FastBPClassifier", calculate_linear_classifier_output_shapes,
                                _skl2onnx_convert,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    return True


def _skl2onnx_convert(scope, operator, container):
    """Copy export_estimator's graph into skl2onnx's, under the names skl2onnx chose."""
    from onnx import TensorProto, helper

    elem = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    model = export_estimator(operator.raw_operator, opset=container.target_opset,
                             input_dtype=helper.tensor_dtype_to_np_dtype(elem))
    names = {"input": operator.inputs[0].full_name, "label": operator.outputs[0].full_name,
             "probabilities": operator.outputs[1].full_name}
    # skl2onnx gives probabilities the input's type (its ZipMap expects that); the net's may differ
    wanted = operator.outputs[1].type.to_onnx_type().tensor_type.elem_type
    cast = wanted != model.graph.output[0].type.tensor_type.elem_type
    if cast:
        names["probabilities"] = scope.get_unique_variable_name("probabilities")

    def name(n):
        if n not in names:
            names[n] = scope.get_unique_variable_name(n)
        return names[n]

    for t in model.graph.initializer:
        strings = t.data_type == TensorProto.STRING  # skl2onnx copies raw_data only, which strings lack
        container.add_initializer(name(t.name), t.data_type, list(t.dims),
                                  [v.decode() for v in t.string_data] if strings else t)
    for n in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        container.add_node(n.op_type, [name(i) for i in n.input], [name(o) for o in n.output],
                           name=scope.get_unique_operator_name(n.op_type), **attrs)
    if cast:
        container.add_node("Cast", [names["probabilities"]], [operator.outputs[1].full_name],
                           name=scope.get_unique_operator_name("Cast"), to=wanted)
