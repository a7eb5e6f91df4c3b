"""Test tooling: the TensorFlow ops that fail under op determinism, and finding them in a traced training step
(used by tests/test_gpu_ops.py, tests/test_precision.py and bench/gpu_smoke.py). The deterministic replacement for the
one the U-Net uses (nearest-neighbour ``UpSampling2D``) is ``dualgen.segment.upsampling``.

``env.setup_tensorflow`` calls ``tf.config.experimental.enable_op_determinism()``. A kernel without a
deterministic implementation then raises when it *runs* (on a GPU an ``UnimplementedError``), which a CPU test
never sees. The tables below are the one list of those kernels; ``nondeterministic_ops`` finds them in a traced
graph, so a CPU test can prove a training step would run on a GPU.

Source (TensorFlow 2.21.0, the version pinned in requirements.lock). The ``enable_op_determinism`` docstring
(``tensorflow/python/framework/config.py``) names no ops: "Certain ops will raise an UnimplementedError because
they do not yet have a deterministic implementation". The list is therefore taken from the kernels themselves:
every error message about determinism compiled into ``site-packages/tensorflow/libtensorflow_cc.so.2`` and
``libtensorflow_framework.so.2`` (``strings -n 8 <lib> | grep -i determinis``), each mapped to its op type(s) and
condition with the kernel source (installed headers ``tensorflow/include/tensorflow/core/kernels/*.h`` where
shipped, else TensorFlow's ``tensorflow/core/kernels/...`` and their ``*_d9m_test.py``), and checked on the CPU
(the GPU-only ones run on the CPU with determinism on; ``Timestamp`` and seedless random ops raise there too).

Messages present in the binary that can NOT be raised in 2.21 (so not listed):
- "Deterministic GPU implementation of (un)sorted segment reduction op not available" (UnsortedSegmentSum/Prod/
  Max/Min, SegmentSum/...): ``include/tensorflow/core/kernels/segment_reduction_ops_gpu.cu.h`` (lines ~776-875)
  and ``segment_reduction_ops_impl.h`` (~307-325) switch to deterministic kernels whenever determinism is
  required (``use_deterministic_kernels``), so ``determinism_requirement_met`` is always true. Hence gradients of
  ``tf.gather`` / embedding look-ups (UnsortedSegmentSum of float) and the determinism path of
  ``sparse_softmax_cross_entropy_with_logits`` (a gather) are fine.
- "DepthwiseConvBackpropFilter is not available with this version of cuDNN (< 7.6.3)": under determinism the
  filter gradient always goes to cuDNN (``depthwise_conv_op_d9m_test.py``); TF 2.21 is built with cuDNN 9.
- "GPU Scatter ops for dtype ... do not yet have a deterministic implementation": ResourceScatter*/ScatterNd* run
  on the CPU under determinism; it raises only for non-memcpy dtypes, which have no GPU kernel.
Deterministic (listed nowhere): ResizeBilinearGrad (``ResizeBilinearDeterministicGradKernel``), Conv2D/
Conv2DBackpropInput/Conv2DBackpropFilter (Conv2DTranspose's ops: cuDNN deterministic algorithms), BiasAddGrad,
MaxPoolGrad outside XLA, reductions (Sum, Mean, ...).
"""

import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)

TENSORFLOW_VERSION = "2.21.0"

# op type -> the kernel's message (as in libtensorflow_cc.so.2). Raise on a GPU only, under op determinism.
GPU_OPS = {
    "ResizeNearestNeighborGrad": "A deterministic GPU implementation of ResizeNearestNeighborGrad is not currently "
    "available. (gradient of tf.image.resize nearest / keras UpSampling2D nearest)",
    "AdjustContrast": "A deterministic GPU implementation of AdjustContrast is not currently available.",
    "AdjustContrastv2": "A deterministic GPU implementation of AdjustContrastv2 is not currently available. "
    "(tf.image.adjust_contrast / random_contrast)",
    "SparseTensorDenseMatMul": "A deterministic GPU implementation of SparseTensorDenseMatmulOp is not currently "
    "available.",
    "CropAndResizeGradImage": "Deterministic GPU implementation of CropAndResizeBackpropImage not available.",
    "CropAndResizeGradBoxes": "Deterministic GPU implementation of CropAndResizeBackpropBoxes not available.",
    "Bincount": "Determinism is not yet supported in GPU implementation of Bincount.",
    "DenseBincount": "Determinism is not yet supported in GPU implementation of DenseBincount.",
    "FakeQuantWithMinMaxVarsGradient": "Determinism is not yet supported in GPU implementation of "
    "FakeQuantWithMinMaxVarsGradient.",
    "FakeQuantWithMinMaxVarsPerChannelGradient": "Determinism is not yet supported in GPU implementation of "
    "FakeQuantWithMinMaxVarsPerChannelGradient.",
    "Dilation2DBackpropFilter": "Determinism is not yet supported for Dilation2DBackpropFilter.",
    "Dilation2DBackpropInput": "Determinism is not yet supported for Dilation2DBackpropInput.",
    "MaxPoolGradWithArgmax": "Determinism is not yet supported for MaxPoolGradWithArgmax.",
    "SoftmaxCrossEntropyWithLogits": "The GPU implementation of SoftmaxCrossEntropyWithLogits that would have been "
    "executed is not deterministic. (the Python API avoids it when determinism is "
    "on at trace time)",
    "SparseSoftmaxCrossEntropyWithLogits": "The GPU implementation of SparseSoftmaxCrossEntropyWithLogits that "
    "would have been executed is not deterministic. (the Python API avoids "
    "it when determinism is on at trace time)",
}
_REF_SCATTER = "Determinism is not yet supported in GPU implementation of Scatter ops with ref inputs."
for _op in ("ScatterUpdate", "ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv", "ScatterMin", "ScatterMax"):
    GPU_OPS[_op] = _REF_SCATTER  # scatter_op.cc: the ref-variable kernels (resource variables are fine)

# op type -> (condition on the node, message). Raise on a GPU only, when the condition holds.
_BN = (
    "A deterministic GPU implementation of fused batch-norm backprop, when training is disabled, is not currently "
    "available. (is_training=False: gradient through a BatchNormalization in inference mode, e.g. trainable=False)"
)
GPU_OPS_IF = {
    "FusedBatchNormGrad": (lambda n: not _attr(n, "is_training", True), _BN),
    "FusedBatchNormGradV2": (lambda n: not _attr(n, "is_training", True), _BN),
    "FusedBatchNormGradV3": (lambda n: not _attr(n, "is_training", True), _BN),
    "DebugNumericSummaryV2": (
        lambda n: _attr(n, "tensor_debug_mode", -1) in (3, 4),
        "Determinism is not yet supported for DebugNumericSummaryV2 when tensor_debug_mode is "
        "CONCISE_HEALTH / FULL_HEALTH.",
    ),
    "Svd": (
        lambda n: _last_dim(n) in (1, None),
        "Determinism is not yet supported for SVD of matrices with 1 column. (or the column count is unknown)",
    ),
}

# Raise on every device (the CPU too) under op determinism.
ANY_DEVICE_OPS = {"Timestamp": "Timestamp cannot be called when determinism is enabled"}
_SEEDLESS = "When determinism is enabled, random ops must have a seed specified. (seed = seed2 = 0)"

# Inside an XLA-compiled function (jit_compile=True) on a GPU (tf2xla pooling kernels).
XLA_GPU_OPS = {
    op: "GPU MaxPool gradient ops do not yet have a deterministic XLA implementation."
    for op in ("MaxPoolGrad", "MaxPoolGradV2", "MaxPool3DGrad")
}


def _attr(node, name, default):
    if name not in node.attr:
        return default
    value = node.attr[name]
    kind = value.WhichOneof("value")
    return default if kind is None else getattr(value, kind)


def _last_dim(node):
    """The column count of an Svd's input, from the ``_output_shapes`` of its U output (None: unknown)."""
    shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
    for shape in shapes[1:2]:  # outputs s, u, v: u is [..., M, P]; P = min(M, N) is 1 iff N is 1 (or M is 1)
        if not shape.unknown_rank and shape.dim and shape.dim[-1].size > 0:
            return int(shape.dim[-1].size)
    return None


def _why(node, xla):
    """The message of the kernel ``node`` would raise under op determinism, or None."""
    op = node.op
    if op in ANY_DEVICE_OPS:
        return ANY_DEVICE_OPS[op] + " (any device)"
    if "seed" in node.attr and "seed2" in node.attr and _attr(node, "seed", 0) == 0 and _attr(node, "seed2", 0) == 0:
        return _SEEDLESS + " (any device)"
    if xla:
        return XLA_GPU_OPS.get(op)  # XLA lowers the rest itself (deterministically on GPU under determinism)
    if op in GPU_OPS:
        return GPU_OPS[op]
    if op in GPU_OPS_IF:
        condition, message = GPU_OPS_IF[op]
        return message if condition(node) else None
    return None


def _called_functions(node):
    """Names of the library functions a node refers to (PartitionedCall f, While body/cond, If branches, ...)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names


def _graph_def(obj):
    """(GraphDef, XLA-compiled?) of a ConcreteFunction, tf.Graph or GraphDef."""
    xla = False
    if hasattr(obj, "function_def") and hasattr(obj, "graph"):  # ConcreteFunction
        xla = bool(_attr(obj.function_def, "_XlaMustCompile", False))
        obj = obj.graph
    if isinstance(obj, tf.Graph):
        obj = obj.as_graph_def(add_shapes=True)
    if not isinstance(obj, tf.compat.v1.GraphDef):
        raise TypeError(
            f"expected a ConcreteFunction, tf.Graph or GraphDef, got {type(obj).__name__} (trace a "
            "tf.function first: fn.get_concrete_function(*args))"
        )
    return obj, xla


def walk(obj):
    """(node, scope, in XLA?) for every node of the graph and of every function in its library."""
    graph_def, top_xla = _graph_def(obj)
    functions = {f.signature.name: f for f in graph_def.library.function}
    xla_functions = {name for name, f in functions.items() if _attr(f, "_XlaMustCompile", False)}
    for node in graph_def.node:
        if top_xla or _attr(node, "_XlaMustCompile", False):
            xla_functions.update(_called_functions(node))
    changed = True
    while changed:  # everything an XLA-compiled function calls is compiled with it
        changed = False
        for name in list(xla_functions):
            for node in functions[name].node_def if name in functions else []:
                new = set(_called_functions(node)) - xla_functions
                if new:
                    xla_functions |= new
                    changed = True
    for node in graph_def.node:
        yield node, "", top_xla
    for name, f in functions.items():
        for node in f.node_def:
            yield node, name, name in xla_functions


def op_types(obj):
    """The set of op types in a ConcreteFunction / tf.Graph / GraphDef, nested function bodies included."""
    return {node.op for node, _, _ in walk(obj)}


def nondeterministic_ops(obj):
    """[(op_type, node_name, reason)] for the ops of ``obj`` (ConcreteFunction, tf.Graph or GraphDef, with the
    bodies of nested functions: tf.function calls, while/cond, gradients) that raise under op determinism."""
    found = []
    for node, scope, xla in walk(obj):
        reason = _why(node, xla)
        if reason:
            found.append((node.op, f"{scope}/{node.name}" if scope else node.name, reason))
    return sorted(set(found))


def trace(step_fn, *args, **kwargs):
    """The ConcreteFunction of ``step_fn`` (a tf.function, or a Python function to wrap in one) for ``args``."""
    fn = step_fn if hasattr(step_fn, "get_concrete_function") else tf.function(step_fn)
    return fn.get_concrete_function(*args, **kwargs)


class captured_functions:
    """Record the graphs of the tf.functions that ``module``'s own code creates and calls while active:

        with captured_functions(vqvae) as graphs:
            vqvae.train_vqvae(...)
        nondeterministic_ops(graphs[0])

    ``module.tf`` is replaced by a proxy whose ``function`` wraps ``tf.function``; every call of a wrapped
    function also records its ConcreteFunction (``graphs``: one per distinct trace, in call order). Tests the
    real training code, not a copy of its step."""

    def __init__(self, module):
        self.module, self.graphs = module, []

    def __enter__(self):
        real, graphs = self.module.tf, self.graphs

        def function(func=None, **options):
            if func is None:
                return lambda f: function(f, **options)
            wrapped = real.function(func, **options)

            class Recorder:
                def __call__(self, *args, **kwargs):
                    concrete = wrapped.get_concrete_function(*args, **kwargs)
                    if all(concrete is not g for g in graphs):
                        graphs.append(concrete)
                    return wrapped(*args, **kwargs)

                def __get__(self, obj, objtype=None):  # as a method decorator
                    return self if obj is None else (lambda *a, **k: self(obj, *a, **k))

                def __getattr__(self, name):
                    return getattr(wrapped, name)

            return Recorder()

        class Proxy:
            def __getattr__(self, name):
                return function if name == "function" else getattr(real, name)

        self._real = real
        self.module.tf = Proxy()
        return self.graphs

    def __exit__(self, *exc):
        self.module.tf = self._real
