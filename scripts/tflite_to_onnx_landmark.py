#!/usr/bin/env python3
"""Convert MediaPipe's face_landmark.tflite to a canonical ONNX file and check it against TFLite.

Used by scripts/regen-face-landmark.sh inside a throwaway venv, with
scripts/regen_common.py; not imported by anything else.

  convert TFLITE ONNX    translate the graph op by op (see below) and write the ONNX file
  verify  TFLITE ONNX    run both on the same inputs and compare (onnxruntime vs LiteRT)

Why a converter of our own: tflite2onnx 0.4.1 fails on this model (a PAD layout error). The
model uses a small op set: DEQUANTIZE (float16 weights), CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD,
MAX_POOL_2D and PAD. Each is translated to its ONNX counterpart here; anything else stops the
conversion with an error, so a changed upstream model cannot be converted silently wrong.

Layout: the ONNX graph keeps the TFLite interface, NHWC input `input` [1, 192, 192, 3] (RGB,
0..1) and outputs `landmarks` [1, 1, 1, 1404] and `face_flag` [1, 1, 1, 1] (a logit; apply a
sigmoid for the face-presence probability). One Transpose after the input moves to NCHW, every
4-D activation inside is NCHW, and one Transpose before each output moves back.

Reproducibility: node and initializer order follow the TFLite operator order, names are derived
from the TFLite tensor names, the producer name and version are fixed, and ONNX stores no
timestamps, so the same .tflite and the pinned packages give the same bytes every time.
"""

import sys

import regen_common

PRODUCER = "authnet tflite_to_onnx_landmark.py"
PRODUCER_VERSION = "1"
OPSET = 13
IR_VERSION = 8


def _load(tflite_path):
    import tflite

    with open(tflite_path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        sys.exit(f"expected 1 subgraph, found {model.SubgraphsLength()}")
    return tflite, model, model.Subgraphs(0)


def _op_name(tflite, model, op):
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    oc = model.OperatorCodes(op.OpcodeIndex())
    return names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]


def _same_pads(in_hw, kernel_hw, stride_hw, dilation_hw):
    """TensorFlow SAME padding as explicit ONNX pads [top, left, bottom, right]."""
    begin, end = [], []
    for i, k, s, d in zip(in_hw, kernel_hw, stride_hw, dilation_hw):
        out = -(-i // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - i, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def convert(tflite_path: str, onnx_path: str) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tfl, model, g = _load(tflite_path)
    np_types = {
        tfl.TensorType.FLOAT32: np.float32,
        tfl.TensorType.FLOAT16: np.float16,
        tfl.TensorType.INT32: np.int32,
    }

    def tname(i):
        return g.Tensors(i).Name().decode()

    def shape(i):
        return [int(d) for d in g.Tensors(i).ShapeAsNumpy()]

    def const(i):
        t = g.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        if t.Type() not in np_types:
            sys.exit(f"tensor {tname(i)}: unsupported type {t.Type()}")
        return np.frombuffer(data.tobytes(), dtype=np_types[t.Type()]).reshape(shape(i))

    nodes, inits = [], []
    consts = {}  # tflite tensor index -> float32 numpy array (dequantized)
    env = {}  # tflite tensor index -> ONNX value name holding it in NCHW (4-D) layout

    def add_init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def value(i):
        if i in env:
            return env[i]
        if i in consts:
            sys.exit(f"tensor {tname(i)} is a constant used as an activation")
        sys.exit(f"tensor {tname(i)} is used before it is produced")

    def activation(kind, x, out, prefix):
        if kind == tfl.ActivationFunctionType.NONE:
            nodes.append(helper.make_node("Identity", [x], [out], name=prefix + "/act"))
        elif kind == tfl.ActivationFunctionType.RELU:
            nodes.append(helper.make_node("Relu", [x], [out], name=prefix + "/relu"))
        elif kind == tfl.ActivationFunctionType.RELU6:
            lo = add_init(prefix + "/relu6_lo", np.array(0.0, np.float32))
            hi = add_init(prefix + "/relu6_hi", np.array(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [x, lo, hi], [out], name=prefix + "/relu6"))
        else:
            sys.exit(f"{prefix}: unsupported fused activation {kind}")

    def to_nchw_const(arr):
        """A constant broadcast against an NHWC activation, re-laid for NCHW."""
        a = arr.astype(np.float32)
        while a.ndim < 4:
            a = a[np.newaxis]
        return a.transpose(0, 3, 1, 2)

    (inp,) = [int(i) for i in g.InputsAsNumpy()]
    in_shape = shape(inp)
    nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2],
                                  name="input/to_nchw"))
    env[inp] = "input_nchw"

    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        kind = _op_name(tfl, model, op)
        ins = [int(i) for i in op.InputsAsNumpy()]
        (out,) = [int(i) for i in op.OutputsAsNumpy()]
        oname = tname(out)
        opts = op.BuiltinOptions()

        if kind == "DEQUANTIZE":
            c = const(ins[0])
            if c is None:
                sys.exit(f"{oname}: DEQUANTIZE of a non-constant")
            consts[out] = c.astype(np.float32)
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x = value(ins[0])
            w = consts[ins[1]] if ins[1] in consts else const(ins[1]).astype(np.float32)
            b = None
            if len(ins) > 2 and ins[2] >= 0:
                b = consts[ins[2]] if ins[2] in consts else const(ins[2]).astype(np.float32)
            if kind == "CONV_2D":
                o = tfl.Conv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                w_onnx = w.transpose(0, 3, 1, 2)  # [O, KH, KW, I] -> [O, I, KH, KW]
                group = 1
            else:
                o = tfl.DepthwiseConv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                cin = shape(ins[0])[3]
                if w.shape[3] != cin * o.DepthMultiplier():
                    sys.exit(f"{oname}: depthwise kernel {w.shape} vs {cin} input channels")
                w_onnx = w.transpose(3, 0, 1, 2)  # [1, KH, KW, O] -> [O, 1, KH, KW]
                group = cin
            kh, kw = w_onnx.shape[2], w_onnx.shape[3]
            strides = [o.StrideH(), o.StrideW()]
            dil = [o.DilationHFactor(), o.DilationWFactor()]
            if o.Padding() == tfl.Padding.SAME:
                pads = _same_pads(shape(ins[0])[1:3], [kh, kw], strides, dil)
            else:
                pads = [0, 0, 0, 0]
            conv_in = [x, add_init(oname + "/W", w_onnx)]
            if b is not None:
                conv_in.append(add_init(oname + "/B", b))
            raw = oname + "/conv"
            nodes.append(helper.make_node("Conv", conv_in, [raw], name=oname, kernel_shape=[kh, kw],
                                          strides=strides, dilations=dil, pads=pads, group=group))
            activation(o.FusedActivationFunction(), raw, oname, oname)
            env[out] = oname
        elif kind == "PRELU":
            x = value(ins[0])
            alpha = consts[ins[1]] if ins[1] in consts else const(ins[1]).astype(np.float32)
            a = add_init(oname + "/alpha", to_nchw_const(alpha)[0])
            nodes.append(helper.make_node("PRelu", [x, a], [oname], name=oname))
            env[out] = oname
        elif kind == "ADD":
            o = tfl.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            args = []
            for i in ins:
                if i in env:
                    args.append(env[i])
                else:
                    c = consts.get(i)
                    if c is None:
                        c = const(i)
                    args.append(add_init(f"{oname}/c{len(args)}", to_nchw_const(c)))
            raw = oname + "/add"
            nodes.append(helper.make_node("Add", args, [raw], name=oname))
            activation(o.FusedActivationFunction(), raw, oname, oname)
            env[out] = oname
        elif kind == "MAX_POOL_2D":
            x = value(ins[0])
            o = tfl.Pool2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            kernel = [o.FilterHeight(), o.FilterWidth()]
            strides = [o.StrideH(), o.StrideW()]
            if o.Padding() == tfl.Padding.SAME:
                pads = _same_pads(shape(ins[0])[1:3], kernel, strides, [1, 1])
            else:
                pads = [0, 0, 0, 0]
            raw = oname + "/pool"
            nodes.append(helper.make_node("MaxPool", [x], [raw], name=oname, kernel_shape=kernel,
                                          strides=strides, pads=pads))
            activation(o.FusedActivationFunction(), raw, oname, oname)
            env[out] = oname
        elif kind == "PAD":
            x = value(ins[0])
            p = const(ins[1])
            if p is None or p.shape != (4, 2):
                sys.exit(f"{oname}: PAD needs constant [4, 2] paddings")
            nchw = p[[0, 3, 1, 2]]  # NHWC rows -> NCHW rows
            pads = add_init(oname + "/pads",
                            np.concatenate([nchw[:, 0], nchw[:, 1]]).astype(np.int64))
            nodes.append(helper.make_node("Pad", [x, pads], [oname], name=oname, mode="constant"))
            env[out] = oname
        else:
            sys.exit(f"unsupported TFLite op {kind} (producing {oname})")

    outs = [int(i) for i in g.OutputsAsNumpy()]
    rename = {"conv2d_21": "landmarks", "conv2d_31": "face_flag"}
    outputs = []
    for i in outs:
        name = rename.get(tname(i))
        if name is None:
            sys.exit(f"unexpected graph output {tname(i)}")
        nodes.append(helper.make_node("Transpose", [value(i)], [name], perm=[0, 2, 3, 1],
                                      name=name + "/to_nhwc"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape(i)))

    graph = helper.make_graph(
        nodes,
        "face_landmark",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        outputs,
        initializer=inits,
    )
    m = helper.make_model(graph, producer_name=PRODUCER, producer_version=PRODUCER_VERSION,
                          opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = IR_VERSION
    m.doc_string = ("MediaPipe face_landmark.tflite (mediapipe 0.10.21, Apache-2.0), "
                    "converted by scripts/tflite_to_onnx_landmark.py")
    onnx.checker.check_model(m)
    with open(onnx_path, "wb") as f:
        f.write(m.SerializeToString(deterministic=True))


def verify(tflite_path: str, onnx_path: str) -> None:
    import numpy as np

    tfl, sess = regen_common.runtimes(tflite_path, onnx_path)
    t_in = tfl.get_input_details()[0]
    t_outs = {d["name"]: d for d in tfl.get_output_details()}
    print(f"tflite input  {t_in['name']} {[int(d) for d in t_in['shape']]}")
    for o in sess.get_inputs() + sess.get_outputs():
        print(f"onnx   {o.name} {o.shape} {o.type}")

    # The contract recorded in models/face_landmark.toml and models/README.md.
    got = [(o.name, o.shape, o.type) for o in sess.get_inputs() + sess.get_outputs()]
    want = [("input", [1, 192, 192, 3], "tensor(float)"),
            ("landmarks", [1, 1, 1, 1404], "tensor(float)"),
            ("face_flag", [1, 1, 1, 1], "tensor(float)")]
    if got != want:
        sys.exit(f"contract mismatch: got {got!r}, want {want!r}")

    # Random pixels in 0..1 plus two smooth images (a face-free gradient and a bright blob), so
    # both outputs are checked away from random noise as well.
    rng = np.random.default_rng(20261202)
    yy, xx = np.mgrid[0:192, 0:192].astype(np.float32) / 191.0
    grad = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    blob = np.exp(-((xx - 0.5) ** 2 + (yy - 0.45) ** 2) / 0.05)[..., None].repeat(3, axis=-1)
    inputs = [rng.random((1, 192, 192, 3), dtype=np.float32) for _ in range(3)]
    inputs += [grad[None].astype(np.float32), blob[None].astype(np.float32)]
    worst = {"landmarks": 0.0, "face_flag": 0.0}
    for x in inputs:
        tfl.set_tensor(t_in["index"], x)
        tfl.invoke()
        ref = {"landmarks": tfl.get_tensor(t_outs["conv2d_21"]["index"]),
               "face_flag": tfl.get_tensor(t_outs["conv2d_31"]["index"])}
        res = dict(zip(["landmarks", "face_flag"], sess.run(["landmarks", "face_flag"],
                                                            {"input": x})))
        for k in worst:
            worst[k] = max(worst[k], float(np.abs(res[k] - ref[k]).max()))
    # Landmarks are in input pixels (0..192), the flag is a logit; float32 reordering between
    # runtimes moves them by ~1e-5. A wrong pad, layout or weight moves them by > 1.
    print(f"max |onnx - tflite| over {len(inputs)} inputs: landmarks {worst['landmarks']:.3g} px, "
          f"face_flag {worst['face_flag']:.3g}")
    if max(worst.values()) > 1e-3:
        sys.exit("onnx output does not match the tflite reference (limit 1e-3)")
    print("numeric check ok")


if __name__ == "__main__":
    regen_common.main(__doc__, convert, verify)
