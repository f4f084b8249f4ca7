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
    graph = model.graph
    for field in (graph.initializer, graph.value_info):
        ordered = sorted(field, key=lambda t: t.name)
        del field[:]
        field.extend(ordered)
    onnx.checker.check_model(model)
    onnx.save(model, onnx_path)
    os.remove(raw_path)


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
