"""`greedy.onnx` from `encoder.onnx` and `decoder_step.onnx`: an ONNX `Loop` around the step.

tf2onnx's conversion of the whole `greedy` signature rebuilt the step inside its own `Loop`
from the TensorFlow graph: at the benchmark size it peaked at 3.38 GB (2.4 GB above the loaded
model) and kept 1 GB afterwards, the export's largest stage but parity. The two graphs it
would contain are already written, so `greedy_onnx` joins them instead, in the order of
`seq2seq_attn.search.greedy_search` with its defaults (at most 2 x padded source length + 10
steps, no penalties), which is what the `greedy` signature exports:

    memory, projected_keys, mask, states = encoder(source_ids)
    loop t < max_length while some row is unfinished:
        logits, attention, new_states = step(prev, states, memory, projected_keys, mask)
        step_lp = log_softmax(logits); token = argmax(step_lp)   (first maximum)
        alive = not finished
        log_probs += alive ? step_lp[token] : 0
        token = alive ? token : 0;  attention = alive ? attention : 0
        finished |= token == [END]
    tokens (batch, steps), attention (batch, steps, source), scores = log_probs

Any step graph with the `state_<i>` -> `new_state_<i>` interface works (GRU or LSTM, stacked,
input feeding, no attention): the body wires states by name. With a shortlist (issue 34),
`shortlist.onnx` runs once before the loop and `decoder_step_shortlist.onnx` is the step,
reading the gathered output layer from outside the loop like the encoder's outputs: that is
`greedy_shortlist.onnx`. The parity harness checks the
result like any other artifact (`greedy_graph_agreement` of `*.onnx`).
"""

import numpy as np
from onnx import TensorProto, compose, helper, numpy_helper

from seq2seq_attn.interface import (
    DEFAULT_MAX_LENGTH_RATIO,
    MAX_LENGTH_OFFSET,
    new_state_name,
    state_names,
)

ENCODER_PREFIX, STEP_PREFIX, SHORTLIST_PREFIX = "encoder/", "step/", "shortlist/"
SHORTLIST_OUTPUTS = ("shortlist_kernel", "shortlist_bias", "shortlist_positions")


_MEMORY = ("memory", "projected_keys", "mask")  # the encoder's outputs every step reads


def _bookkeeping(logits, attention):
    """The host search's choice and bookkeeping after one step, as ONNX nodes."""
    node = helper.make_node
    return [
        node("LogSoftmax", [logits], ["step_lp"], axis=-1),  # (batch, vocab)
        node("ArgMax", ["step_lp"], ["choice64"], axis=-1, keepdims=1),  # first max, (batch, 1)
        node("GatherElements", ["step_lp", "choice64"], ["choice_lp2"], axis=-1),
        node("Squeeze", ["choice_lp2", "axis_last"], ["choice_lp"]),  # (batch,)
        node("Squeeze", ["choice64", "axis_last"], ["choice64_1"]),
        node("Cast", ["choice64_1"], ["choice"], to=TensorProto.INT32),
        node("Not", ["finished"], ["alive"]),
        node("Where", ["alive", "choice_lp", "zero_f"], ["gain"]),
        node("Add", ["log_probs", "gain"], ["log_probs_out"]),
        node("Where", ["alive", "choice", "zero_i"], ["token"]),  # 0 after [END]
        node("Unsqueeze", ["alive", "axis_last"], ["alive2"]),
        node("Where", ["alive2", attention, "zero_f"], ["weights"]),  # (batch, source)
        node("Equal", ["token", "end_id"], ["ended"]),
        node("Or", ["finished", "ended"], ["finished_out"]),
        node("Not", ["finished_out"], ["unfinished"]),
        node("Cast", ["unfinished"], ["unfinished_i"], to=TensorProto.INT32),
        node("ReduceMax", ["unfinished_i"], ["any_unfinished"], keepdims=0),
        node("Cast", ["any_unfinished"], ["keep_going"], to=TensorProto.BOOL),
        node("Identity", ["token"], ["prev_out"]),
        node("Identity", ["token"], ["token_scan"]),
        node("Identity", ["weights"], ["weights_scan"]),
    ]


def _body(step, states, end_id, shortlisted=False):
    """The `Loop` body: step, choice, bookkeeping. Reads the encoder's outputs (and the
    shortlist graph's, when `shortlisted`) from outside."""
    node, p = helper.make_node, STEP_PREFIX
    nodes = [node("Identity", [f"{ENCODER_PREFIX}{n}"], [f"{p}{n}"]) for n in _MEMORY]
    if shortlisted:
        nodes += [
            node("Identity", [f"{SHORTLIST_PREFIX}{n}"], [f"{p}{n}"]) for n in SHORTLIST_OUTPUTS
        ]
    nodes += list(step.graph.node)
    nodes += _bookkeeping(f"{p}logits", f"{p}attention")
    nodes += [
        node("Identity", [f"{p}{new_state_name(i)}"], [f"{name}_out"])
        for i, name in enumerate(states)
    ]
    value = helper.make_tensor_value_info
    inputs = [
        value("iteration", TensorProto.INT64, []),
        value("condition", TensorProto.BOOL, []),
        value(f"{p}prev_tokens", TensorProto.INT32, ["batch"]),
        value("finished", TensorProto.BOOL, ["batch"]),
        value("log_probs", TensorProto.FLOAT, ["batch"]),
        *[value(f"{p}{name}", TensorProto.FLOAT, ["batch", None]) for name in states],
    ]
    outputs = [
        value("keep_going", TensorProto.BOOL, []),
        value("prev_out", TensorProto.INT32, ["batch"]),
        value("finished_out", TensorProto.BOOL, ["batch"]),
        value("log_probs_out", TensorProto.FLOAT, ["batch"]),
        *[value(f"{name}_out", TensorProto.FLOAT, ["batch", None]) for name in states],
        value("token_scan", TensorProto.INT32, ["batch"]),
        value("weights_scan", TensorProto.FLOAT, ["batch", None]),
    ]
    # The body holds its own constants: `onnx.compose.add_prefix` (translate.onnx prefixes this
    # graph) renames a subgraph's references to its parent's nodes but not to its initializers.
    end = numpy_helper.from_array(np.array(end_id, np.int32), "end_id")
    initializers = [*step.graph.initializer, *_constants(BODY_CONSTANTS), end]
    return helper.make_graph(_in_order(nodes), "greedy_step", inputs, outputs, initializers)


def _in_order(nodes):
    """`nodes` sorted so that each comes after the nodes that produce its inputs (tf2onnx
    may list an Identity after its readers, which the ONNX checker rejects in a subgraph)."""
    produced_by = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    done, order = set(), []

    def visit(i):
        if i in done:
            return
        done.add(i)
        for name in nodes[i].input:
            if name in produced_by:
                visit(produced_by[name])
        order.append(nodes[i])

    for i in range(len(nodes)):
        visit(i)
    return order


BODY_CONSTANTS = {
    "axis_last": np.array([-1], np.int64),
    "zero_f": np.array(0.0, np.float32),
    "zero_i": np.array(0, np.int32),
}
OUTER_CONSTANTS = {
    "false1": np.array([False]),
    "zero1_f": np.array([0.0], np.float32),
    "ratio": np.array(DEFAULT_MAX_LENGTH_RATIO, np.int64),
    "offset": np.array(MAX_LENGTH_OFFSET, np.int64),
    "true": np.array(True),
    "index0": np.array([0], np.int64),
    "index1": np.array([1], np.int64),
}


def _constants(arrays):
    return [numpy_helper.from_array(a, name) for name, a in arrays.items()]


def greedy_onnx(encoder, step, start_id, end_id, shortlist=None):
    """The `greedy` graph of `encoder` and `step` (ONNX `ModelProto`s of one export).

    Args:
        encoder: `encoder.onnx`: source_ids -> memory, projected_keys, mask, state_<i>.
        step: `decoder_step.onnx`: prev_tokens, state_<i>, memory, projected_keys, mask ->
            logits, attention, new_state_<i>; with `shortlist`, `decoder_step_shortlist.onnx`
            (the same plus the `SHORTLIST_OUTPUTS` inputs).
        start_id, end_id: the target [START] and [END] ids.
        shortlist: optional `shortlist.onnx`: source_ids -> `SHORTLIST_OUTPUTS`, run once.

    Returns:
        an `onnx.ModelProto`: source_ids int32 `(batch, length)` -> tokens int32
        `(batch, steps)`, scores float32 `(batch,)`, attention float32 `(batch, steps, length)`.
    """
    if not float(DEFAULT_MAX_LENGTH_RATIO).is_integer():
        raise ValueError(f"an integer max length ratio is needed, got {DEFAULT_MAX_LENGTH_RATIO}")
    states = state_names([i.name for i in step.graph.input])
    # Copies with every name (nodes, edges, inputs, outputs, initializers) prefixed.
    encoder = compose.add_prefix(encoder, ENCODER_PREFIX)
    step = compose.add_prefix(step, STEP_PREFIX)
    node, e = helper.make_node, ENCODER_PREFIX
    nodes = [node("Identity", ["source_ids"], [f"{e}source_ids"]), *encoder.graph.node]
    if shortlist is not None:
        shortlist = compose.add_prefix(shortlist, SHORTLIST_PREFIX)
        nodes += [
            node("Identity", ["source_ids"], [f"{SHORTLIST_PREFIX}source_ids"]),
            *shortlist.graph.node,
        ]
    nodes += [
        node("Shape", ["source_ids"], ["source_shape"]),
        node("Gather", ["source_shape", "index0"], ["batch1"]),
        node("Gather", ["source_shape", "index1"], ["length1"]),
        node("Squeeze", ["length1"], ["length"]),
        node("Mul", ["length", "ratio"], ["scaled"]),
        node("Add", ["scaled", "offset"], ["max_length"]),
        node("Expand", ["start_id", "batch1"], ["prev0"]),
        node("Expand", ["false1", "batch1"], ["finished0"]),
        node("Expand", ["zero1_f", "batch1"], ["log_probs0"]),
        node(
            "Loop",
            ["max_length", "true", "prev0", "finished0", "log_probs0"]
            + [f"{e}{name}" for name in states],
            ["prev_last", "finished_last", "scores"]
            + [f"{name}_last" for name in states]
            + ["tokens_by_step", "attention_by_step"],
            body=_body(step, states, end_id, shortlist is not None),
        ),
        node("Transpose", ["tokens_by_step"], ["tokens"], perm=[1, 0]),
        node("Transpose", ["attention_by_step"], ["attention"], perm=[1, 0, 2]),
    ]
    value = helper.make_tensor_value_info
    source = encoder.graph.input[0]  # keeps a static length where the export has one
    source = helper.make_value_info("source_ids", source.type)
    graph = helper.make_graph(
        nodes,
        "greedy",
        [source],
        [
            value("attention", TensorProto.FLOAT, ["batch", "steps", None]),
            value("scores", TensorProto.FLOAT, ["batch"]),
            value("tokens", TensorProto.INT32, ["batch", "steps"]),
        ],
        [
            *encoder.graph.initializer,
            *([] if shortlist is None else shortlist.graph.initializer),
            *_constants(OUTER_CONSTANTS),
            numpy_helper.from_array(np.array([start_id], np.int32), "start_id"),
        ],
    )
    opsets = {}
    for model in (encoder, step) + (() if shortlist is None else (shortlist,)):
        for imp in model.opset_import:
            opsets[imp.domain] = max(opsets.get(imp.domain, 0), imp.version)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    )
    model.ir_version = min(encoder.ir_version, step.ir_version)
    return model
