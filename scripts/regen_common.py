"""What the converters behind scripts/regen-*.sh share: the command line and the two runtimes
their `verify` compares.

Imported by scripts/mobilefacenet_convert.py and scripts/tflite_to_onnx_landmark.py (run as
scripts, so this directory is on sys.path), inside the throwaway venv of their regen script.
"""

import sys


def runtimes(tflite_path: str, onnx_path: str):
    """The TFLite model in LiteRT (tensors allocated) and the ONNX model in onnxruntime (CPU)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    tfl = Interpreter(model_path=tflite_path)
    tfl.allocate_tensors()
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return tfl, sess


def main(doc: str, convert, verify) -> None:
    """`convert TFLITE ONNX` or `verify TFLITE ONNX`; anything else exits with `doc`."""
    if len(sys.argv) != 4 or sys.argv[1] not in ("convert", "verify"):
        sys.exit(doc)
    {"convert": convert, "verify": verify}[sys.argv[1]](sys.argv[2], sys.argv[3])
