"""Several one-signature SavedModels joined into one, at the protocol-buffer level.

The TFLite converter takes one SavedModel directory with every signature of `model.tflite`
(`encode`, `decode_step`, `greedy`), and the frozen functions it reads are costly to hold:
at the benchmark size, freezing all three and saving them with one `tf.saved_model.save`
peaked at 3.84 GB, against 2.42 GB for the largest one alone. So `save_frozen_steps` freezes
and saves one signature at a time, and `merge_signature_saved_models` joins the saved files.

Each input is what `tf.saved_model.save(tf.Module(), path, signatures={name: function})`
writes for a variable-free function: a root object with a `signatures` map holding one
bare concrete function, that function and the ones it calls in the graph's function library,
a signature def naming graph nodes (placeholders and a `PartitionedCall`), and no variables.
The merge keeps the first file whole and adds, from each other one, its functions (renamed
with a per-input suffix, so that names never collide), its concrete function in the object
graph and the `signatures` map, its signature def and the nodes it names (renamed), and the
ops it uses to the op list.
"""

import shutil
from pathlib import Path

SIGNATURE_MAP = "signatures"
_SAVER_FUNCTIONS = ("_traced_save_", "_traced_restore_")  # variables only; none here


def _read(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    return proto


def _signature_key(meta, directory):
    keys = [k for k in meta.signature_def if k != "__saved_model_init_op"]
    if len(keys) != 1:
        raise ValueError(f"{directory}: expected one signature, found {sorted(keys)}")
    return keys[0]


def _rename_in_attrs(attrs, names):
    for value in attrs.values():
        if value.HasField("func") and value.func.name in names:
            value.func.name = names[value.func.name]
        if value.HasField("list"):
            for function in value.list.func:
                function.name = names.get(function.name, function.name)


def _rename_functions(meta, suffix):
    """Appends `suffix` to every function name of `meta`, and to every reference to one."""
    library = meta.graph_def.library
    names = {f.signature.name: f.signature.name + suffix for f in library.function}
    for function in library.function:
        function.signature.name = names[function.signature.name]
        for node in function.node_def:
            node.op = names.get(node.op, node.op)  # a direct call
            _rename_in_attrs(node.attr, names)
    for node in meta.graph_def.node:
        _rename_in_attrs(node.attr, names)
    objects = meta.object_graph_def
    for node in objects.nodes:
        if node.WhichOneof("kind") == "bare_concrete_function":
            bare = node.bare_concrete_function
            bare.concrete_function_name = names[bare.concrete_function_name]
    concrete = {names.get(k, k): v for k, v in objects.concrete_functions.items()}
    objects.ClearField("concrete_functions")
    for name, function in concrete.items():
        objects.concrete_functions[name].CopyFrom(function)


def _tensor_node(tensor_name):
    return tensor_name.split(":")[0]


def _add_signature(base, meta, key):
    """Adds `meta`'s one signature `key` (functions already renamed) to `base`."""
    signature = meta.signature_def[key]
    tensors = [*signature.inputs.values(), *signature.outputs.values()]
    used = {_tensor_node(t.name) for t in tensors}
    taken = {node.name for node in base.graph_def.node}
    renamed = {n: n if n not in taken else f"{n}_{key}" for n in used}
    for node in meta.graph_def.node:
        if node.name in used:
            added = base.graph_def.node.add()
            added.CopyFrom(node)
            added.name = renamed[node.name]
            for i, name in enumerate(added.input):
                source, _, port = name.partition(":")
                added.input[i] = renamed.get(source, source) + (f":{port}" if port else "")
    added_signature = base.signature_def[key]
    added_signature.CopyFrom(signature)
    for tensor in [*added_signature.inputs.values(), *added_signature.outputs.values()]:
        node, _, port = tensor.name.partition(":")
        tensor.name = f"{renamed[node]}:{port}"
    for function in meta.graph_def.library.function:
        if not any(part in function.signature.name for part in _SAVER_FUNCTIONS):
            base.graph_def.library.function.add().CopyFrom(function)


def _add_object(base, meta, key):
    """Adds `meta`'s concrete function to `base`'s object graph, under `signatures.<key>`."""
    objects, base_objects = meta.object_graph_def, base.object_graph_def
    (function,) = [n for n in objects.nodes if n.WhichOneof("kind") == "bare_concrete_function"]
    index = len(base_objects.nodes)
    base_objects.nodes.add().CopyFrom(function)
    root = base_objects.nodes[0]
    (signatures,) = [c.node_id for c in root.children if c.local_name == SIGNATURE_MAP]
    child = base_objects.nodes[signatures].children.add()
    child.node_id, child.local_name = index, key
    for name, concrete in objects.concrete_functions.items():
        base_objects.concrete_functions[name].CopyFrom(concrete)
    ops = {op.name for op in base.meta_info_def.stripped_op_list.op}
    for op in meta.meta_info_def.stripped_op_list.op:
        if op.name not in ops:
            base.meta_info_def.stripped_op_list.op.add().CopyFrom(op)
            ops.add(op.name)


def merge_signature_saved_models(directories, out):
    """Writes to `out` one SavedModel with the signatures of `directories` (one each).

    Args:
        directories: SavedModel directories, each with one signature of a variable-free
            function, saved from a bare `tf.Module` (see the module docstring).
        out: the directory to write (replaced if it exists).

    Raises:
        ValueError: an input has no or several signatures, or two share a key.
    """
    protos = [_read(d) for d in directories]
    metas = [p.meta_graphs[0] for p in protos]
    keys = [_signature_key(m, d) for m, d in zip(metas, directories, strict=True)]
    if len(set(keys)) != len(keys):
        raise ValueError(f"signature keys repeat: {keys}")
    for index, meta in enumerate(metas):
        _rename_functions(meta, f"_{index}")
    for meta, key in zip(metas[1:], keys[1:], strict=True):
        _add_signature(metas[0], meta, key)
        _add_object(metas[0], meta, key)
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    # The first input's assets and (empty) variables; its fingerprint would no longer match.
    ignore = shutil.ignore_patterns("saved_model.pb", "fingerprint.pb")
    shutil.copytree(directories[0], out, ignore=ignore)
    (out / "saved_model.pb").write_bytes(protos[0].SerializeToString())
