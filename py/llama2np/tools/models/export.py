"""A checkpoint rewritten in a chosen llama2.c version, validated before it is kept (`llama2np export`)."""

from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.tools.models.checkpoint_writer import write_checkpoint_into
from llama2np.tools.models.validation import Report, read_any, validate_model
from llama2np.tools.outputs import atomic_output, check_output


def export_checkpoint(source: Path, target: Path, version: int, group_size: int,
                      force: bool = False) -> tuple[Report, str]:
    """Write `source` (train.py .pt or llama2.c .bin) to `target` as llama2.c `version`; returns
    the written file's report and the source's format.

    The output is checked before the input is read (never the input by any name, replaced only
    with `force`) and written to a uniquely named temporary file that becomes `target` only once
    it validates: a failure leaves `target`, and any `target.partial` of the user's, as they were.
    """
    check_output(target, [source], force, "output checkpoint")
    checkpoint, source_format = read_any(source)
    with atomic_output(target, replace=force) as temporary:
        with open(temporary, "wb") as out:  # a refused write names `target` (atomic_output)
            write_checkpoint_into(out, checkpoint, version, group_size)
        del checkpoint  # the input's memory goes before the output is read back to validate it
        report = validate_model(temporary)
        if not report.ok:
            raise Llama2npError(f"the exported file did not validate: {' '.join(report.problems)}")
    report.checkpoint = str(target)  # the name it now has, not the temporary one
    return report, source_format
