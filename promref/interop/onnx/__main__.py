"""``python -m promref.interop.onnx WEIGHTS.npz OUT.onnx``: export a weights file to ONNX."""
from .export import main

raise SystemExit(main())
