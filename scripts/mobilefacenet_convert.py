#!/usr/bin/env python3
"""Convert MobileFaceNet.tflite to a canonical ONNX file and check it against TFLite.

Used by scripts/regen-mobilefacenet.sh inside a throwaway venv, with
scripts/regen_common.py; not imported by anything else.

  convert TFLITE ONNX    tflite2onnx, then canonicalise the protobuf (see below)
  verify  TFLITE ONNX    run both on the same inputs and compare (onnxruntime vs LiteRT)

Canonicalisation: tflite2onnx 0.4.1 emits the graph's initializers (and value_info) in an order
that changes from run to run (it iterates over sets), so two conversions of the same .tflite
differ byte for byte while describing the same graph. Sorting those two lists by name, which
ONNX allows because neither list is ordered semantically, makes the output byte-reproducible,
so the committed file can be checked with a plain sha256. Nodes are left in tflite2onnx's
order, which is topological and stable.

PReLU fusion: tflite2onnx writes each of the 33 PReLU activations as six nodes,
`Relu(x) + c * (x - Abs(x))` with `c` reshaped to `[1, C, 1, 1]` (six passes over the feature
map where one does). Each such group becomes one `PRelu(x, 2c)` node: for x < 0,
`x - |x| = 2x` exactly and scaling by 2 is exact, so both graphs give the same float32 values
bit for bit, which `convert` checks on random inputs before it writes the file (the embeddings,
and so every model enrolled with the unfused file, are unchanged). 17 % fewer instructions per
batch under callgrind (README, "The backbone's PReLU fusion").
"""

import os
import sys

import regen_common


def convert(tflite_path: str, onnx_path: str) -> None:
    import onnx
    import tflite2onnx

    raw_path = onnx_path + ".raw"
    tflite2onnx.convert(tflite_path, raw_path)
    model = onnx.load(raw_path)
    fused = fuse_prelu(model)
    if fused != 33:
        sys.exit(f"expected 33 decomposed PReLU groups to fuse, found {fused}")
    graph = model.graph
    for field in (graph.initializer, graph.value_info):
        ordered = sorted(field, key=lambda t: t.name)
        del field[:]
        field.extend(ordered)
    onnx.checker.check_model(model)
    onnx.save(model, onnx_path)
    same_outputs(raw_path, onnx_path)
    os.remove(raw_path)


def fuse_prelu(model) -> int:
    """Replaces every `Relu(x) + Reshape(c) * (x - Abs(x))` group by `PRelu(x, 2c)` in place;
    returns how many it replaced."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}
    drop, replace = set(), {}
    for add in graph.node:
        if add.op_type != "Add":
            continue
        relu, mul = (made_by.get(i) for i in add.input)
        if not (relu and mul and relu.op_type == "Relu" and mul.op_type == "Mul"):
            continue
        reshape, sub = (made_by.get(i) for i in mul.input)
        if not (reshape and sub and reshape.op_type == "Reshape" and sub.op_type == "Sub"):
            continue
        x = relu.input[0]
        absn = made_by.get(sub.input[1])
        if not (absn and absn.op_type == "Abs" and absn.input[0] == x and sub.input[0] == x):
            continue
        c = numpy_helper.to_array(inits[reshape.input[0]])
        shape = numpy_helper.to_array(inits[reshape.input[1]])
        slope = (2 * c).astype(np.float32).reshape(shape)
        if slope.ndim == 4 and slope.shape[0] == 1:
            slope = slope.reshape(slope.shape[1:])  # [C, 1, 1]: broadcast over N, H, W
        name = add.output[0] + "/prelu_slope"
        graph.initializer.append(numpy_helper.from_array(slope, name))
        replace[id(add)] = helper.make_node("PRelu", [x, name], [add.output[0]],
                                            name=add.output[0] + "/PRelu")
        drop.update(id(n) for n in (relu, absn, sub, reshape, mul))
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for field in (graph.initializer, graph.value_info):
        keep = [t for t in field if t.name in used]
        del field[:]
        field.extend(keep)
    return len(replace)


def same_outputs(before: str, after: str) -> None:
    """Both graphs on the same random inputs in onnxruntime: the outputs must be bitwise equal."""
    import numpy as np
    import onnxruntime as ort

    a = ort.InferenceSession(before, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(after, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    rng = np.random.default_rng(7)
    for _ in range(4):
        x = ((rng.integers(0, 256, size=(2, 3, 112, 112)) - 127.5) / 128.0).astype(np.float32)
        ya, yb = a.run(None, {name: x})[0], b.run(None, {name: x})[0]
        if not np.array_equal(ya, yb):
            sys.exit(f"PReLU fusion changed the outputs (max diff {np.abs(ya - yb).max():.3g})")
    print("PReLU fusion: outputs bitwise equal to the unfused graph")


def verify(tflite_path: str, onnx_path: str) -> None:
    import numpy as np

    tfl, sess = regen_common.runtimes(tflite_path, onnx_path)
    t_in = tfl.get_input_details()[0]
    t_out = tfl.get_output_details()[0]
    o_in = sess.get_inputs()[0]
    o_out = sess.get_outputs()[0]
    print(f"tflite input  {t_in['name']} {[int(d) for d in t_in['shape']]} {t_in['dtype'].__name__}")
    print(f"tflite output {t_out['name']} {[int(d) for d in t_out['shape']]}")
    print(f"onnx   input  {o_in.name} {o_in.shape} {o_in.type}")
    print(f"onnx   output {o_out.name} {o_out.shape} {o_out.type}")

    # The contract recorded in models/mobilefacenet.toml.
    expect = [
        (o_in.name, "input"),
        (o_in.shape, [2, 3, 112, 112]),
        (o_in.type, "tensor(float)"),
        (o_out.name, "embeddings"),
        (o_out.shape, [2, 192]),
        (o_out.type, "tensor(float)"),
    ]
    for got, want in expect:
        if got != want:
            sys.exit(f"contract mismatch: got {got!r}, want {want!r}")

    # Pixels 0..255 in RGB order, normalised as the upstream app does: (x - 127.5) / 128.
    rng = np.random.default_rng(20240601)
    pixels = rng.integers(0, 256, size=(2, 112, 112, 3)).astype(np.float32)
    nhwc = (pixels - 127.5) / 128.0
    tfl.set_tensor(t_in["index"], nhwc)
    tfl.invoke()
    reference = tfl.get_tensor(t_out["index"])
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    got = sess.run(None, {o_in.name: nchw})[0]

    # Raw (un-normalised) embeddings have a norm of about 26; float32 reordering across two
    # runtimes moves them by ~2e-5. 1e-3 is far below anything that changes a decision and far
    # above that noise; a wrong layout or channel order moves them by > 1.
    diff = float(np.abs(got - reference).max())
    cos = (got * reference).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
    )
    print(f"max |onnx - tflite| = {diff:.3g}, cosine = {cos.min():.7f}")
    if diff > 1e-3 or cos.min() < 0.99999:
        sys.exit("onnx output does not match the tflite reference")
    print("numeric check ok")


if __name__ == "__main__":
    regen_common.main(__doc__, convert, verify)
