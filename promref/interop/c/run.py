"""Run a built library on images: the host executable or the Cortex-M ELF under QEMU.

Both drivers write, per image, either the logits or (trace) every layer's int8
output in execution order; :func:`split_trace` turns those bytes back into
``{layer name: int8 [N, ...]}`` with promref's shapes.
"""
import os
import re
import subprocess
import tempfile

import numpy as np

from ...model import tensor_shapes
from .toolchain import MCU_TARGETS, QEMU, ToolchainError


def split_trace(model, raw, images):
    """bytes of ``images`` traces -> {layer name: int8 array [images, *shape]}."""
    shapes = tensor_shapes(model)
    sizes = [int(np.prod(shapes[layer.name])) for layer in model.layers]
    data = np.frombuffer(raw, np.int8)
    if data.size != images * sum(sizes):
        raise ToolchainError(f"trace has {data.size} bytes, expected {images} x {sum(sizes)}")
    data = data.reshape(images, sum(sizes))
    out, at = {}, 0
    for layer, size in zip(model.layers, sizes):
        out[layer.name] = data[:, at:at + size].reshape((images,) + tuple(shapes[layer.name]))
        at += size
    return out


def run_host(model, binary, x, trace=False, timeout=None):
    """int8 images [N, H, W, 3] through the host executable -> logits [N, classes] or the trace dict."""
    x = np.ascontiguousarray(x, np.int8)
    with tempfile.TemporaryDirectory(prefix="promref-c-") as work:
        src, dst = os.path.join(work, "images.bin"), os.path.join(work, "out.bin")
        x.tofile(src)
        done = subprocess.run([binary, src, dst] + (["trace"] if trace else []), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise ToolchainError(f"{binary} exited {done.returncode}: {done.stderr[-2000:]}")
        with open(dst, "rb") as f:
            raw = f.read()
    if trace:
        return split_trace(model, raw, len(x))
    return np.frombuffer(raw, np.int8).reshape(len(x), model.num_classes)


def run_qemu(model, elf, x, cpu="cortex-m4", timeout=600):
    """int8 images through the Cortex-M ELF under qemu-system-arm -> (trace dict, {"stack_bytes": ...})."""
    x = np.ascontiguousarray(x, np.int8)
    with tempfile.TemporaryDirectory(prefix="promref-qemu-") as work:
        x.tofile(os.path.join(work, "images.bin"))
        argv = [QEMU, "-machine", MCU_TARGETS[cpu], "-cpu", cpu, "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", elf]
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"qemu timed out after {timeout} s") from None
        text = done.stdout + done.stderr  # semihosting console output may land on either
        if done.returncode != 0 or "done" not in text:
            raise ToolchainError(f"qemu exited {done.returncode}: {text[-2000:]}")
        with open(os.path.join(work, "trace.bin"), "rb") as f:
            raw = f.read()
    info = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}
    return split_trace(model, raw, len(x)), info
