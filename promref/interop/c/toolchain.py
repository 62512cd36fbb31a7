"""Compile a generated library for the host and for a Cortex-M, disassemble, measure sizes.

Host: the system C compiler (``$CC``, else cc or gcc) at ``-std=c99 -Wall -Wextra
-Werror -O2``, optionally with ``-fsanitize=address,undefined``.  Cortex-M:
``arm-none-eabi-gcc`` with the same warnings, ``-ffreestanding -nostdlib``: the
library links against libgcc alone, so it uses no libc and no float routines.
"""
import os
import re
import shutil
import subprocess

from ...errors import PromrefError

HOST_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
SANITIZE_FLAGS = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
#: Cortex-M4 on QEMU's mps2-an386 board; mps2-an500 is a Cortex-M7
MCU_TARGETS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}
LIBRARY = ["prom_runtime.c", "prom_model.c", "prom_weights.c"]
ARM_CC, ARM_OBJDUMP, ARM_NM = "arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm"
QEMU = "qemu-system-arm"

#: multiply instructions, as objdump spells their mnemonics
X86_MULTIPLY = re.compile(r"^(i?mul|v?pmul\w*|v?pmadd\w*|mulx|v?mul[sp][sd]|vfn?madd\w*)$")
ARM_MULTIPLY = re.compile(r"^(mul|mla|mls|[su]mull|[su]mlal|smul\w*|umul\w*|smla\w*|umla\w*|smmul\w*|smmla\w*"
                          r"|smmls\w*|smlsd\w*|smuad\w*|smusd\w*|umaal|vmul\w*|vmla\w*|vmls\w*|vnmul\w*|vfma\w*)"
                          r"(s|eq|ne|cs|cc|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)?(\.\w+)?$")


class ToolchainError(PromrefError):
    """A compiler or tool is missing, or a build failed (the message holds its output)."""


def host_compiler():
    """The host C compiler: $CC, else cc, else gcc."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise ToolchainError("no C compiler found (set CC, or install gcc)")


def have_arm_toolchain():
    """True when arm-none-eabi-gcc, its objdump and qemu-system-arm are all installed."""
    return all(shutil.which(t) for t in (ARM_CC, ARM_OBJDUMP, QEMU))


def _run(argv, cwd):
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolchainError(f"{' '.join(argv[:3])} ... failed:\n{(done.stderr or done.stdout)[-2000:]}")
    return done.stdout


def build_host(libdir, sanitize=False, out=None):
    """Compile the library and host/prom_host.c -> path of the executable."""
    out = out or os.path.join(libdir, "build", "prom_host_asan" if sanitize else "prom_host")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flags = HOST_FLAGS + (SANITIZE_FLAGS if sanitize else [])
    _run([host_compiler()] + flags + ["-o", out] + LIBRARY + ["host/prom_host.c"], libdir)
    return out


def build_mcu(libdir, cpu="cortex-m4", out=None):
    """Compile the library and the Cortex-M driver with arm-none-eabi-gcc -> path of the ELF."""
    out = out or os.path.join(libdir, "build", f"prom_mcu_{cpu}.elf")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flags = HOST_FLAGS + [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", "-ffreestanding", "-nostdlib",
                          "-T", "cortexm/mps2.ld"]
    _run([ARM_CC] + flags + ["-o", out] + LIBRARY + ["cortexm/prom_mcu.c", "cortexm/startup.c", "-lgcc"], libdir)
    return out


def compile_object(libdir, source, arm=False, cpu="cortex-m4"):
    """Compile one library source to an object file (for disassembly) -> its path."""
    out = os.path.join(libdir, "build", os.path.basename(source)[:-2] + ("_arm.o" if arm else "_host.o"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cc = [ARM_CC, f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft"] if arm else [host_compiler()]
    _run(cc + HOST_FLAGS + ["-c", source, "-o", out], libdir)
    return out


def disassemble(obj, symbol, arm=False):
    """[(mnemonic, line)] of the function ``symbol`` in object ``obj``."""
    tool = ARM_OBJDUMP if arm else "objdump"
    text = _run([tool, "-d", "--no-show-raw-insn", obj], os.path.dirname(obj))
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(r"^[0-9a-f]+ <", line):
            inside = line.rstrip().endswith(f"<{symbol}>:")
            continue
        parts = line.split("\t")
        if inside and len(parts) >= 2 and parts[1].strip():
            lines.append((parts[1].split()[0].lower(), line.strip()))
    if not lines:
        raise ToolchainError(f"no function {symbol!r} in {obj}")
    return lines


def multiplies(obj, symbol, arm=False):
    """The multiply instructions in ``symbol`` (x86: imul/mul/pmul*/pmadd*...; ARM: mul/mla/smul*...)."""
    pattern = ARM_MULTIPLY if arm else X86_MULTIPLY
    return [line for mnemonic, line in disassemble(obj, symbol, arm) if pattern.match(mnemonic)]


def mcu_sizes(elf):
    """Flash and static RAM of a Cortex-M ELF, by symbol: weights, code, other; bss -> dict of bytes."""
    text = _run([ARM_NM, "-S", "--size-sort", elf], os.path.dirname(elf))
    sizes = {"weights": 0, "code": 0, "other_flash": 0, "bss": 0, "arena": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        size, kind, name = int(parts[1], 16), parts[2], parts[3]
        if re.fullmatch(r"prom_[wbms]\d+", name):
            sizes["weights"] += size
        elif kind in "Tt":
            sizes["code"] += size
        elif kind in "RrDd":
            sizes["other_flash"] += size
        elif kind in "Bb":
            sizes["bss"] += size
            if name == "arena":
                sizes["arena"] = size
    sizes["flash"] = sizes["weights"] + sizes["code"] + sizes["other_flash"]
    return sizes
