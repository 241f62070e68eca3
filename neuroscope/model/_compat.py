"""Import-order fix for nnsight + gradio in one process.

nnsight patches a ``save`` attribute onto objects; anyio modules imported after that patch fail
with ``TypeError: Attribute 'save' is missing its type annotation`` (measured with nnsight 0.8.1,
gradio 6.31; ``tests/ui`` fails without this import). Importing the anyio modules gradio's worker threads use
*before* nnsight avoids it. This module must be imported before any nnsight import.
"""

import anyio  # noqa: F401
import anyio._backends._asyncio  # noqa: F401
import anyio.from_thread  # noqa: F401
import anyio.streams.memory  # noqa: F401
import anyio.to_thread  # noqa: F401
