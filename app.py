"""NeuroScope app entry point (Hugging Face Space style): ``python app.py [--model M] [--share]``."""

from neuroscope.model import _compat  # noqa: F401  (nnsight + gradio import-order fix, before all else)

try:  # a ZeroGPU Space: `spaces` must come before anything touches CUDA
    import spaces  # noqa: F401
except ImportError:
    pass

from neuroscope.ui.app import main

if __name__ == "__main__":
    main()
