"""No file is ever lost: export, export-tokenizer, train-tokenizer and build given outputs that
are their own inputs, existing files, folders, links, special files or missing folders, and
inputs that are not regular files. Each run is the real command in a subprocess bounded in
address space and time (see tests/hostile.py); each checks the exit status, the one sentence on
standard error and that every file that was in the folder before is byte-identical after.

Memory: these commands need 35-45 MB of resident memory (Python, NumPy, SentencePiece, the
1 MB model); PEAK_RSS_MB leaves room for allocator noise and stays below the 128 MB line of
the long-line test, which a reader that took whole lines could not stay under.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import assert_refused, folder_state, run_bounded

pytestmark = pytest.mark.hostile

PEAK_RSS_MB = 100
CORPUS_LINE = "the little dog saw a big red ball and ran to it with {} friends\n"


@pytest.fixture
def folder(tmp_path, model_dir) -> Path:
    """A user's folder: a checkpoint, a SentencePiece model, a training text and a FIFO."""
    shutil.copyfile(model_dir / "stories260K.bin", tmp_path / "in.bin")
    shutil.copyfile(model_dir / "tok512.model", tmp_path / "m.model")
    (tmp_path / "c.txt").write_text("".join(CORPUS_LINE.format(i) for i in range(2000)))
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "sub").mkdir()
    return tmp_path


def refused_untouched(folder: Path, status: int, args: list, *phrases: str) -> object:
    """Run `llama2np ARGS` in `folder`: refused with `status` and a sentence holding `phrases`,
    within the memory bound, and every entry of the folder exactly as it was; returns the
    outcome."""
    before = folder_state(folder)
    outcome = run_bounded(*args, cwd=folder)
    assert_refused(outcome, status, *phrases)
    assert outcome.peak_rss_mb < PEAK_RSS_MB, outcome.peak_rss_mb
    assert folder_state(folder) == before
    return outcome


def succeeds_keeping(folder: Path, args: list, *written: str) -> dict:
    """Run `llama2np ARGS` in `folder`: exit 0, every entry that was there is unchanged but for
    `written`, and nothing else is new (no temporary file left behind). Returns the new state."""
    before = folder_state(folder)
    outcome = run_bounded(*args, cwd=folder)
    assert outcome.status == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.peak_rss_mb < PEAK_RSS_MB, outcome.peak_rss_mb
    after = folder_state(folder)
    assert {k: v for k, v in before.items() if k not in written} == \
        {k: v for k, v in after.items() if k not in written}
    assert set(after) == set(before) | set(written)
    return after


TRAIN = ["train-tokenizer", "--vocab-size", "300", "--input"]


def command_line(value: object) -> str | None:
    """A test's id: its command line (pytest's own id for the other parameters)."""
    return " ".join(map(str, value)) if isinstance(value, list) and len(value) > 1 else None


# -- an output that is one of the command's inputs, by any name --------------------------------

@pytest.mark.parametrize("args", [
    ["export", "in.bin", "in.bin", "--force"],
    ["export", "in.bin", "sub/../in.bin", "--force"],
    ["export", "in.bin", "hard.bin", "--force"],
    ["export", "in.bin", "link.bin", "--force"],
    ["export-tokenizer", "m.model", "--out", "m.model", "--force"],
    ["export-tokenizer", "m.model", "--out", "link.bin", "--force"],
    # PREFIX.bin and PREFIX.model are outputs too
    [*TRAIN, "c.txt", "model.bin", "--out", "model", "--force"],
    [*TRAIN, "c.txt", "m.model", "--out", "m", "--force"],
], ids=command_line)
def test_an_output_that_is_an_input_is_refused_even_with_force(folder, args):
    os.link(folder / "in.bin", folder / "hard.bin")
    target = "m.model" if args[0] == "export-tokenizer" else "in.bin"
    (folder / "link.bin").symlink_to(target)
    shutil.copyfile(folder / "in.bin", folder / "model.bin")
    refused_untouched(folder, 2, args, "is also an input of this command")


# -- an existing output, replaced only with --force ---------------------------------------------

@pytest.mark.parametrize("args", [
    ["export", "in.bin", "model.bin"],
    ["export-tokenizer", "m.model"],  # m.bin beside the model
    ["export-tokenizer", "m.model", "--out", "model.bin"],
    # the example: a checkpoint named like the tokenizer prefix is not overwritten
    [*TRAIN, "c.txt", "--out", "model"],
    [*TRAIN, "c.txt", "--out", "m"],  # m.model exists (and is not an input)
], ids=command_line)
def test_an_existing_output_is_refused_without_force(folder, args):
    shutil.copyfile(folder / "in.bin", folder / "model.bin")
    shutil.copyfile(folder / "in.bin", folder / "m.bin")
    refused_untouched(folder, 2, args, "exists; pass --force to replace it")


@pytest.mark.parametrize(("args", "written"), [
    (["export", "in.bin", "model.bin", "--force", "--version", "2"], ["model.bin"]),
    (["export-tokenizer", "m.model", "--force"], ["m.bin"]),
    ([*TRAIN, "c.txt", "--out", "model", "--force"], ["model.bin", "model.model"]),
], ids=command_line)
def test_force_replaces_the_output(folder, model_dir, args, written):
    shutil.copyfile(folder / "in.bin", folder / "model.bin")
    shutil.copyfile(folder / "in.bin", folder / "m.bin")
    before = folder_state(folder)
    after = succeeds_keeping(folder, args, *written)
    for name in written:
        assert after[name] != before.get(name)
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~current_umask()
    if args[0] == "export-tokenizer":
        assert (folder / "m.bin").read_bytes() == (model_dir / "tok512.bin").read_bytes()


def test_a_link_at_the_output_is_replaced_itself_never_written_through(folder):
    (folder / "precious.bin").write_bytes(b"the user's own file")
    (folder / "out.bin").symlink_to("precious.bin")
    refused_untouched(folder, 2, ["export", "in.bin", "out.bin"], "exists; pass --force")
    succeeds_keeping(folder, ["export", "in.bin", "out.bin", "--force"], "out.bin")
    assert not (folder / "out.bin").is_symlink()
    assert (folder / "out.bin").stat().st_size == (folder / "in.bin").stat().st_size
    assert (folder / "precious.bin").read_bytes() == b"the user's own file"


# -- temporary names never collide with a user's files ------------------------------------------

def test_export_from_a_file_named_like_a_temporary_keeps_it(folder):
    (folder / "in.bin").rename(folder / "m.bin.partial")
    succeeds_keeping(folder, ["export", "m.bin.partial", "m.bin"], "m.bin")


def test_export_keeps_the_user_s_partial_file(folder):
    (folder / "out.bin.partial").write_bytes(b"half of something the user is writing")
    succeeds_keeping(folder, ["export", "in.bin", "out.bin"], "out.bin")


# -- output paths that cannot be written ---------------------------------------------------------

@pytest.mark.parametrize(("args", "status", "phrase"), [
    (["export", "in.bin", "nowhere/out.bin"], 2, "does not exist; create it first"),
    (["export-tokenizer", "m.model", "--out", "nowhere/m.bin"], 2, "does not exist; create it first"),
    ([*TRAIN, "c.txt", "--out", "nowhere/tok"], 2, "does not exist; create it first"),
    (["export", "in.bin", "sub"], 2, "is a folder; name a file to write"),
    (["export-tokenizer", "m.model", "--out", "sub"], 2, "is a folder; name a file to write"),
    ([*TRAIN, "c.txt", "--out", "sub/tok"], 2, "is a folder; name a file to write"),  # sub/tok.bin
    ([*TRAIN, "c.txt", "--out", "."], 2, "names a folder; give a file name prefix"),
    (["build", "--out", ".", "--checkpoint", "in.bin", "--tokenizer", "m.model"], 2,
     "is not a folder name"),
    (["export", "in.bin", "fifo", "--force"], 2, "is not a regular file"),
    (["export-tokenizer", "m.model", "--out", "fifo", "--force"], 2, "is not a regular file"),
    # a folder nobody can create a file in (even root, which ignores permissions)
    (["export", "in.bin", "/proc/out.bin"], 1, "cannot write in /proc"),
    (["export-tokenizer", "m.model", "--out", "/proc/m.bin"], 1, "cannot write in /proc"),
    ([*TRAIN, "c.txt", "--out", "/proc/tok"], 1, "cannot write in /proc"),
    # names longer than a file system allows, whole or with the suffix a command adds
    (["export", "in.bin", "a" * 300], 2, "cannot be written (File name too long)"),
    (["export-tokenizer", "m.model", "--out", "a" * 300], 2, "(File name too long)"),
    ([*TRAIN, "c.txt", "--out", "a" * 250], 2, "(File name too long)"),
    # links that would have a file written over a device, or that lead nowhere but in a circle
    (["export", "in.bin", "to-null", "--force"], 2, "is a link to something that is not a regular file"),
], ids=command_line)
def test_an_output_that_cannot_be_written_is_a_sentence(folder, args, status, phrase):
    (folder / "sub" / "tok.bin").mkdir()
    (folder / "to-null").symlink_to("/dev/null")
    outcome = refused_untouched(folder, status, args, phrase)
    assert "Training" not in outcome.stderr  # refused before any long work


# -- inputs that are not regular files: refused before anything is read ---------------------------

@pytest.mark.parametrize(("args", "phrase"), [
    (["export", "fifo", "out.bin"], "not a regular file"),
    (["export", "/dev/zero", "out.bin"], "not a regular file"),
    (["export", "sub", "out.bin"], "is a directory"),
    (["export-tokenizer", "fifo", "--out", "out.bin"], "not a regular file"),
    (["export-tokenizer", "/dev/zero", "--out", "out.bin"], "not a regular file"),
    (["export-tokenizer", "sub", "--out", "out.bin"], "is a directory"),
    ([*TRAIN, "c.txt", "fifo", "--out", "tok"], "not a regular file"),
    ([*TRAIN, "/dev/zero", "--out", "tok"], "not a regular file"),
    ([*TRAIN, "sub", "--out", "tok"], "is a directory"),
    ([*TRAIN, "shard.json", "--out", "tok"], "not a regular file"),
    (["build", "--out", "site", "--checkpoint", "fifo", "--tokenizer", "tok512.bin"],
     "checkpoint file fifo is not a regular file"),
    (["build", "--out", "site", "--checkpoint", "in.bin", "--tokenizer", "/dev/zero"],
     "tokenizer file /dev/zero is not a regular file"),
], ids=command_line)
def test_an_input_that_is_not_a_regular_file_is_a_sentence(folder, model_dir, args, phrase):
    os.mkfifo(folder / "shard.json")
    shutil.copyfile(model_dir / "tok512.bin", folder / "tok512.bin")
    refused_untouched(folder, 1, args, phrase)


# -- training input that would take memory without bound ----------------------------------------

def test_a_line_of_128_mb_is_skipped_in_bounded_memory(folder):
    """One 128 MB line with no newline (sparse: no disk written) among ordinary lines."""
    with (folder / "c.txt").open("r+b") as corpus:
        corpus.truncate(corpus.seek(0, os.SEEK_END) + (128 << 20))
        corpus.seek(0, os.SEEK_END)
        corpus.write(b"\nthe end of the story\n")
    outcome = run_bounded(*TRAIN, "c.txt", "--out", "tok", cwd=folder)
    assert outcome.status == 0, outcome.stderr
    assert "skipped 1 over-long sentences" in outcome.stderr
    assert "on 2,001 sentences" in outcome.stderr  # the 2,000 lines and the end, not the giant
    assert outcome.peak_rss_mb < PEAK_RSS_MB, outcome.peak_rss_mb


def test_a_json_shard_over_1_gib_is_refused_unread(folder, tmp_path_factory):
    # kept out of the folder, whose fingerprint would read it twice; it is checked by its size
    big = tmp_path_factory.mktemp("shards") / "big.json"
    with big.open("wb") as shard:
        shard.truncate((1 << 30) + 1)  # sparse: nothing written to disk
    refused_untouched(folder, 1, [*TRAIN, big, "--out", "tok"],
                      "big.json is 1,073,741,825 bytes, more than the 1,073,741,824")
    assert big.stat().st_size == (1 << 30) + 1


def test_a_link_in_a_circle_is_replaced_by_the_output_when_asked(folder):
    (folder / "loop").symlink_to("loop")
    outcome = run_bounded("export", "in.bin", "loop", "--force", cwd=folder)
    assert outcome.status == 0, outcome.stderr
    assert (folder / "loop").is_file() and not (folder / "loop").is_symlink()


def test_a_number_of_thousands_of_digits_in_a_shard_is_a_sentence(folder):
    (folder / "big.json").write_text('[{"story": "hi"}, ' + "1" * 5000 + "]")
    refused_untouched(folder, 1, [*TRAIN, "big.json", "--out", "tok"], "is not valid JSON")


def test_a_tokenizer_model_with_a_piece_that_is_not_utf_8_is_a_sentence(folder):
    data = (folder / "m.model").read_bytes()
    at = data.find(b"ing")
    (folder / "bad.model").write_bytes(data[:at] + b"\xc3\x28g" + data[at + 3:])
    refused_untouched(folder, 1, ["export-tokenizer", "bad.model", "--out", "bad.bin"],
                      "bad.model: piece", "is not valid UTF-8")


def test_a_deeply_nested_json_shard_is_a_sentence(folder):
    (folder / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    refused_untouched(folder, 1, [*TRAIN, "deep.json", "--out", "tok"], "nests JSON too deeply")


# -- Ctrl+C leaves no temporary file ---------------------------------------------------------------

def interrupt_once_writing(args: list, folder: Path, temporary: str) -> subprocess.CompletedProcess:
    """Start `llama2np ARGS` in `folder`, wait until a name matching `temporary` appears in the
    folder (the command has begun writing), send SIGINT as Ctrl+C would, and let it finish."""
    process = subprocess.Popen([sys.executable, "-m", "llama2np.cli", *args], cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(folder.glob(temporary)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never began writing"
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_ctrl_c_during_training_leaves_the_folder_as_it_was(folder):
    # 200,000 lines take seconds to read and train on: the signal comes long before the end
    (folder / "c.txt").write_text("".join(CORPUS_LINE.format(i) for i in range(200_000)))
    before = folder_state(folder)
    result = interrupt_once_writing([*TRAIN, "c.txt", "--out", "tok"], folder, ".tok.*.partial")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "llama2np: interrupted."
    assert folder_state(folder) == before


# -- build -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("setup", "status", "phrase"), [
    ("file", 2, "exists and is not a folder"),
    ("link", 2, "is a symbolic link; name the site folder itself"),
    ("missing", 2, "does not exist; create it first"),
    ("foreign", 1, "was not written by `llama2np build`"),
    ("proc", 1, "cannot write in /proc"),
])
def test_build_refuses_an_output_it_cannot_replace_safely(folder, model_dir, setup, status, phrase):
    out = {"missing": "nowhere/site", "proc": "/proc/site"}.get(setup, "site")
    if setup == "file":
        (folder / "site").write_text("the user's notes")
    elif setup == "link":
        (folder / "site").symlink_to("sub")
    elif setup == "foreign":
        (folder / "site").mkdir()
        (folder / "site" / "notes.txt").write_text("mine")
    refused_untouched(folder, status, ["build", "--out", out, "--checkpoint", "in.bin",
                                       "--tokenizer", model_dir / "tok512.bin"], phrase)


@pytest.mark.parametrize(("setup", "phrase"), [
    ("notes", "holds files that `llama2np build` did not write (NOTES.txt);"),
    ("git", "did not write (.git, .git/config)"),
    ("input", "is inside --out site, which the build replaces"),
])
def test_build_keeps_what_a_person_put_in_its_site(folder, model_dir, built_site, setup, phrase):
    """A site this command wrote, with something of the user's added since (notes, a .git
    folder, the very model the rebuild is asked to bundle): the rebuild refuses and deletes
    nothing."""
    shutil.copytree(built_site, folder / "site", symlinks=True)
    checkpoint = model_dir / "stories260K.bin"
    if setup == "notes":
        (folder / "site" / "NOTES.txt").write_text("mine")
    elif setup == "git":
        (folder / "site" / ".git").mkdir()
        (folder / "site" / ".git" / "config").write_text("mine")
    else:
        shutil.copyfile(checkpoint, folder / "site" / "my-model.bin")
        checkpoint = folder / "site" / "my-model.bin"
    status = 2 if setup == "input" else 1
    refused_untouched(folder, status, ["build", "--out", "site", "--checkpoint", checkpoint,
                                       "--tokenizer", model_dir / "tok512.bin"], phrase)


BUILD_PEAK_RSS_MB = 400  # brotli at its best setting over the megabyte files of Pyodide
# Node, which the build runs to snapshot Python's start, reserves about 10 GB of address space
# for WebAssembly's memory and guard pages, so a build's address space is not capped: its bound
# is the build's own peak resident memory above, and the time limit.
BUILD_ADDRESS_SPACE_MB = 1 << 16


def test_build_replaces_its_own_site_keeps_a_user_s_partial_folder_and_survives_ctrl_c(
        folder, model_dir, built_site):
    """A site this command wrote (the session's, copied) beside a user's `site.partial/`: a
    rebuild interrupted by Ctrl+C leaves both as they were; a full rebuild replaces the site,
    leaves `site.partial/` alone and no temporary folder behind."""
    shutil.copytree(built_site, folder / "site", symlinks=True)
    (folder / "site" / "index.html").write_text("a stale page, to be replaced")
    (folder / "site.partial").mkdir()
    (folder / "site.partial" / "draft.html").write_text("the user's draft")
    args = ["build", "--out", "site", "--checkpoint", model_dir / "stories260K.bin", "--tokenizer",
            model_dir / "tok512.bin"]  # the session's model, so the rebuilt site is the same
    before = folder_state(folder)

    interrupted = interrupt_once_writing(args, folder, ".site.*.partial")
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    assert folder_state(folder) == before

    rebuilt = run_bounded(*args, cwd=folder, memory_mb=BUILD_ADDRESS_SPACE_MB, timeout=600)
    assert rebuilt.status == 0, rebuilt.stderr[-2000:]
    assert rebuilt.peak_rss_mb < BUILD_PEAK_RSS_MB, rebuilt.peak_rss_mb
    after = folder_state(folder)
    assert {k: v for k, v in after.items() if not k.startswith("site/")} == \
        {k: v for k, v in before.items() if not k.startswith("site/")}  # site.partial/ too
    assert sorted(os.listdir(folder)) == ["c.txt", "fifo", "in.bin", "m.model", "site",
                                          "site.partial", "sub"]  # no temporary folder left
    assert folder_state(folder / "site") == folder_state(built_site)  # the stale page replaced


def current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
