"""Stage entry points: one library function per pipeline stage, called identically by the CLI, by the
Prefect flows (through thin tasks) and therefore by ``dvc repro``. No Prefect or DVC imports here."""
