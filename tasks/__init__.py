"""Prefect tasks: each loads what it needs, calls one library function, and returns or writes its result.

No algorithms live here; see ``udcshield.pipeline`` for the stage logic. Tasks that use an accelerator
carry the ``gpu`` tag so a concurrency limit can schedule them.
"""
