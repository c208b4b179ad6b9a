"""A checkpoint rewritten in a chosen llama2.c version, validated before it is kept (`llama2np export`)."""

from pathlib import Path

from llama2np.errors import Llama2npError
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.validation import Report, read_any, validate_model


def export_checkpoint(source: Path, target: Path, version: int, group_size: int) -> tuple[Report, str]:
    """Write `source` (train.py .pt or llama2.c .bin) to `target` as llama2.c `version`; returns
    the written file's report and the source's format."""
    if source.resolve() == target.resolve():
        raise Llama2npError("the output would overwrite the input; choose another output file.")
    checkpoint, source_format = read_any(source)
    data = write_checkpoint(checkpoint, version, group_size)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    report = validate_model(partial)
    if not report.ok:
        partial.unlink()
        raise Llama2npError(f"the exported file did not validate: {' '.join(report.problems)}")
    partial.replace(target)
    return report, source_format
