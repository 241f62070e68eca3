"""How the refusal-tuned SmolLM2-135M-Instruct in ``assets/smollm2-refusal/`` was made (not packaged)."""
