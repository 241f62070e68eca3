"""The bundled demo model organism: a small Llama-3.2-shaped chat model trained to refuse."""
