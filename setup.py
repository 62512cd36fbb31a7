from setuptools import find_packages, setup

setup(
    name="promref",
    version="0.1.0",
    description="Reference implementation of PROM (ternary pointwise, int8 elsewhere) MobileNetV2 "
                "inference: integer-exact NumPy and Numba backends, spec, golden vectors",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["promref", "promref.*"]),
    package_data={"promref.interop.c": ["csrc/*.c", "csrc/*.h", "csrc/Makefile", "csrc/*/*.c", "csrc/*/*.h",
                                        "csrc/*/*.ld"]},
    install_requires=["numpy>=1.22", "numba>=0.57", "scipy>=1.8", "pillow>=10.1"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.70"],
        "demo": ["scikit-image>=0.20"],
        "plot": ["matplotlib>=3.5"],
        # peers for the conformance tests: LiteRT (TFLite) with its flatbuffer parser, ONNX Runtime
        "interop": ["tflite>=2.18", "ai-edge-litert>=2.3", "onnx>=1.16", "onnxruntime>=1.18"],
        "tutorials": ["matplotlib>=3.5", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6"],
    },
    entry_points={"console_scripts": ["promref = promref.cli:main"]},
)
