"""Classes of attack closed at their root, each with several inputs: an output that appears
while a command runs, signals other than Ctrl+C, text from files and clients reaching a
terminal, a site folder of unknown origin, and HTTP as the RFCs say."""

import errno
import http.client
import os
import pickle
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hostile import assert_refused, folder_state, run_bounded
from llama2np.runtime.errors import Llama2npError, UsageError
from llama2np.tools.outputs import atomic_output
from llama2np.tools.site.output_folder import MARKER, check_output_folder, mark_as_built, swap_in
from llama2np.tools.site.serve import start_server
from torch_files import name, torch_zip

pytestmark = pytest.mark.hostile


# -- an output that appears while the command runs is kept ---------------------------------------

@pytest.mark.parametrize("intruder", ["file", "link", "empty"])
def test_an_output_that_appears_mid_run_is_kept_and_the_run_refused(tmp_path, intruder):
    target = tmp_path / "out.bin"
    with pytest.raises(UsageError, match="appeared while this command ran"):
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"ours")
            if intruder == "file":
                target.write_bytes(b"theirs")
            elif intruder == "link":
                target.symlink_to(tmp_path / "elsewhere")
            else:
                target.touch()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary left
    if intruder == "file":
        assert target.read_bytes() == b"theirs"
    with atomic_output(target, replace=True) as temporary:  # --force replaces it
        temporary.write_bytes(b"ours")
    assert target.read_bytes() == b"ours"


def test_two_exports_to_one_path_never_both_say_they_wrote(tmp_path, model_dir):
    for attempt in range(3):
        target = tmp_path / f"out{attempt}.bin"
        runs = [subprocess.Popen([sys.executable, "-m", "llama2np.cli", "export",
                                  str(model_dir / "stories260K.bin"), str(target), "--version", str(v)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for v in (1, 2)]
        results = [(run.wait(60), run.stdout.read(), run.stderr.read()) for run in runs]
        assert sorted(status for status, _, _ in results) == [0, 2], results
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_added_to_the_site_while_it_builds_is_not_deleted(tmp_path):
    out, staging = tmp_path / "dist", tmp_path / "holder" / "site"
    for folder in (out, staging):
        folder.mkdir(parents=True)
        (folder / "index.html").write_text(folder.name)
        mark_as_built(folder)
    check_output_folder(out)  # a site of this command's: it may be replaced ...
    (out / "NOTES.txt").write_text("mine")  # ... but a person adds a file while it builds
    with pytest.raises(Llama2npError, match=r"changed while the site was built \(NOTES.txt\)"):
        swap_in(staging, out)
    assert (out / "NOTES.txt").read_text() == "mine" and (out / "index.html").read_text() == "dist"


@pytest.mark.parametrize("marker", ["built by llama2np build\n", "", "index.html\n"])
def test_a_site_marked_by_an_earlier_release_is_an_unknown_folder(tmp_path, marker):
    out = tmp_path / "dist"
    out.mkdir()
    (out / MARKER).write_text(marker)
    (out / ".git").mkdir()
    (out / "CNAME").write_text("stories.example")
    before = folder_state(out)
    with pytest.raises(Llama2npError, match="was not written by `llama2np build`"):
        check_output_folder(out)
    assert folder_state(out) == before


# -- SIGTERM and SIGHUP end a run as Ctrl+C does ----------------------------------------------------

def corpus(path: Path, megabytes: float) -> None:
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    lines = (" ".join(rng.choice(words) for _ in range(12)) for _ in range(int(megabytes * 12_000)))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_training_leaves_nothing_behind(tmp_path, number):
    corpus(tmp_path / "corpus.txt", 4)
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "llama2np.cli", "train-tokenizer", "--input",
                                str(tmp_path / "corpus.txt"), "--vocab-size", "2000", "--out",
                                str(out / "tok")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".tok.*.scratch")) or not list(out.glob(".*.partial")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(number)
    status = process.wait(60)
    stderr = process.stderr.read()
    expected = "interrupted." if number == signal.SIGINT else f"stopped by {signal.Signals(number).name}."
    assert status == 128 + number and stderr.strip().endswith(f"llama2np: {expected}"), (status, stderr)
    assert "Traceback" not in stderr and list(out.iterdir()) == []


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_story_ends_it_with_128_plus_n(model_dir, number):
    process = subprocess.Popen([sys.executable, "-m", "llama2np.cli", "generate",
                                str(model_dir / "stories260K.bin"), "-z", str(model_dir / "tok512.bin"),
                                "-n", "0", "-s", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(20)  # the story is under way
    process.send_signal(number)
    process.stdout.read()
    assert process.wait(60) == 128 + number
    assert process.stderr.read().decode().endswith(f"stopped by {signal.Signals(number).name}.\n")


# -- text from a file or a client reaches the terminal escaped ---------------------------------------

HOSTILE_NAMES = ["\x1b[2J\x1b[H", "\x1b]0;owned\x07", "x\rllama2np: validation passed",
                 "\u202etxt.exe", "\x9b31m"]


@pytest.mark.parametrize("module", HOSTILE_NAMES)
@pytest.mark.parametrize("command", ["validate", "generate"])
def test_names_inside_a_pt_are_escaped_in_the_sentence(tmp_path, model_dir, module, command):
    evil = tmp_path / "evil.pt"
    pickled = pickle.PROTO + b"\x02" + name(module.replace("\n", ""), "thing") + pickle.STOP
    evil.write_bytes(torch_zip(pickled))
    args = [evil] if command == "validate" else [evil, "-z", model_dir / "tok512.bin"]
    outcome = run_bounded(command, *args)
    sentence = assert_refused(outcome, 1)
    for raw in ("\x1b", "\r", "\x07", "\u202e", "\x9b"):
        assert raw not in outcome.stderr, outcome.stderr
    assert outcome.stderr.count("\n") == 1 and "llama2np: validation passed" not in outcome.stderr.splitlines()
    assert "\\x1b" in sentence or "\\x0d" in sentence or "\\u202e" in sentence or "\\x9b" in sentence


def test_a_zip_member_name_is_escaped(tmp_path):
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("\x1b]0;owned\x07/data.pkl", b"\x80\x02N.")
    outcome = run_bounded("validate", evil)
    assert_refused(outcome, 1)
    assert "\x1b" not in outcome.stderr and "\x07" not in outcome.stderr


def test_serve_logs_a_client_s_control_characters_escaped(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello")
    process = subprocess.Popen([sys.executable, "-m", "llama2np.cli", "serve", str(site), "--port",
                                "0", "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(process.stdout.readline().decode().rstrip().rsplit(":", 1)[1].split("/")[0])
        for line in (b"GET /\x1b[2J\x1b]0;owned\x07 HTTP/1.0\r\n\r\n", b"\x1b[31mHELLO\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(line)
                client.recv(4096)
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
    assert b"\x1b" not in errors and b"\x07" not in errors and b"\\x1b" in errors


# -- serve speaks HTTP as the RFCs say ----------------------------------------------------------------

@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip;q=0", None), ("gzip;q=0, br;q=0", None), ("br;q=0, gzip", "gzip"), ("*;q=0", None),
    ("*", "br"), ("GZIP;Q=0.5", "gzip"), ("identity", None), ("br;q=0.001", "br"),
])
def test_serve_honours_accept_encoding_weights(tmp_path, accept, expected):
    site = tmp_path / "site"
    (site / "web-0123456789").mkdir(parents=True)
    (site / "index.html").write_text("page")
    body = b"x" * 5000
    (site / "web-0123456789" / "app.js").write_bytes(body)
    (site / "web-0123456789" / "app.js.gz").write_bytes(b"gz")
    (site / "web-0123456789" / "app.js.br").write_bytes(b"br")
    server, url = start_server(site)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", int(url.rstrip("/").rsplit(":", 1)[1]))
        connection.request("GET", "/web-0123456789/app.js", headers={"Accept-Encoding": accept})
        response = connection.getresponse()
        data = response.read()
        assert response.getheader("Content-Encoding") == expected
        assert data == ({None: body, "gzip": b"gz", "br": b"br"}[expected])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", ["", " "])
def test_serve_never_takes_an_empty_host_for_every_interface(tmp_path, host):
    (tmp_path / "index.html").write_text("page")
    outcome = run_bounded("serve", tmp_path, "--host", host, "--port", "0", timeout=20)
    assert_refused(outcome, 2, "every interface")


# -- counts and sizes are checked before anything is parsed or allocated --------------------------

def test_a_zip_of_many_entries_is_refused_from_its_directory_s_count(tmp_path):
    evil = tmp_path / "many.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        for index in range(30_000):
            archive.writestr(f"archive/data/{index}", b"")
    for command in (["validate", evil], ["generate", evil, "-z", evil]):
        outcome = run_bounded(*command, memory_mb=512)
        assert_refused(outcome, 1, "lists 30,000 entries")
        assert outcome.peak_rss_mb < 150, outcome.peak_rss_mb


@pytest.mark.parametrize("items", ["{}", "[]", "0", '{"story": ""}'])
def test_a_shard_of_millions_of_empty_items_costs_its_size_not_its_count(tmp_path, items):
    shard = tmp_path / "shard.json"
    shard.write_text("[" + ",".join([items] * 2_000_000) + "]")
    outcome = run_bounded("train-tokenizer", "--input", shard, "--vocab-size", "300",
                          "--out", tmp_path / "tok", memory_mb=1024)
    assert_refused(outcome, 1, "no text to train on")
    assert outcome.peak_rss_mb < 250, outcome.peak_rss_mb


@pytest.mark.parametrize(("what", "size"), [("tokenizer", 1 << 30), ("checkpoint", 4 << 30)])
def test_a_huge_sparse_file_is_refused_before_it_is_read(tmp_path, model_dir, what, size):
    path = tmp_path / f"{what}.bin"
    with open(path, "wb") as out:
        if what == "checkpoint":  # stories260K's header, which describes about 1 MB
            out.write((model_dir / "stories260K.bin").read_bytes()[:28])
        out.truncate(size)
    checkpoint = path if what == "checkpoint" else model_dir / "stories260K.bin"
    tokenizer = path if what == "tokenizer" else model_dir / "tok512.bin"
    for command in (["generate", checkpoint, "-z", tokenizer, "-n", "2"], ["validate", checkpoint, "-z", tokenizer]):
        outcome = run_bounded(*command, timeout=20)
        assert_refused(outcome, 1, path.name)
        assert outcome.peak_rss_mb < 150 and outcome.seconds < 10, (outcome.peak_rss_mb, outcome.seconds)


# -- validate and export stay within 1.5 times the model plus 100 MB --------------------------------

@pytest.mark.parametrize("shape", ["15M", "42M"])
def test_validate_and_export_stream_within_the_memory_bound(tmp_path, shape):
    from llama2np.tools.models.synthetic import SHAPES, write_synthetic_checkpoint

    model = write_synthetic_checkpoint(tmp_path / f"{shape}.bin", SHAPES[shape], version=1)
    quantized = tmp_path / "v2.bin"
    for command in (["validate", model],
                    ["export", model, tmp_path / "v0.bin", "--version", "0"],
                    ["export", model, quantized, "--version", "2"],
                    ["validate", quantized]):  # Q8_0 read as stored, not at four bytes a weight
        bound = 1.5 * Path(command[1]).stat().st_size / 2**20 + 100
        outcome = run_bounded(*command, memory_mb=2048)
        assert outcome.status == 0, outcome.stderr
        print(f"{shape} {command[0]} {command[-1]}: peak {outcome.peak_rss_mb:.0f} MiB, bound {bound:.0f} MiB")
        assert outcome.peak_rss_mb < bound, (command, outcome.peak_rss_mb, bound)


# -- the names of a model's files cannot break the site --------------------------------------------

@pytest.mark.parametrize(("checkpoint_name", "tokenizer_name"), [
    ("model.bin", "model.model"), ("manifest.json", "tok.bin"), (".hidden.bin", "tok.bin.gz"),
    ("m.bin.br", "tok.bin"), ("same.bin", "same.bin2"),
])
def test_any_file_names_make_a_working_model_folder(tmp_path, model_dir, checkpoint_name, tokenizer_name):
    import json

    from llama2np.tools.models.validation import require_valid
    from llama2np.tools.site.build import write_model

    checkpoint, tokenizer = tmp_path / checkpoint_name, tmp_path / "t" / tokenizer_name
    tokenizer.parent.mkdir()
    checkpoint.write_bytes((model_dir / "stories260K.bin").read_bytes())
    tokenizer.write_bytes((model_dir / "tok512.bin").read_bytes())
    folder = write_model(checkpoint, tokenizer, require_valid(checkpoint, tokenizer), tmp_path / "site",
                         tmp_path / "compressed")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (folder / manifest["checkpoint"]["file"]).read_bytes() == checkpoint.read_bytes()
    assert (folder / manifest["tokenizer"]["file"]).read_bytes() == tokenizer.read_bytes()
    assert manifest["name"] == checkpoint.stem


def test_a_hard_linked_copy_of_a_model_is_the_same_model(tmp_path, model_dir):
    from llama2np.tools.site.build import site_models

    copy = tmp_path / "copy.bin"
    os.link(model_dir / "stories260K.bin", copy) if os.stat(model_dir).st_dev == os.stat(tmp_path).st_dev \
        else copy.write_bytes((model_dir / "stories260K.bin").read_bytes())
    with pytest.raises(UsageError, match="named twice"):
        site_models(model_dir / "stories260K.bin", model_dir / "tok512.bin", [(copy, model_dir / "tok512.bin")])


@pytest.mark.parametrize("extra", [
    b"Content-Length: 29\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n1d\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
    b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
])
def test_serve_answers_a_request_with_a_body_once_and_closes(tmp_path, extra):
    (tmp_path / "index.html").write_text("page")
    server, url = start_server(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", int(url.rstrip("/").rsplit(":", 1)[1])), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra)
            answers = b""
            while chunk := client.recv(65536):
                answers += chunk
    finally:
        server.shutdown()
        server.server_close()
    assert answers.count(b"HTTP/1.") == 1 and answers.startswith(b"HTTP/1.1 400"), answers[:200]


@pytest.mark.parametrize("length", [244, 250, 255])
def test_an_output_name_at_the_file_system_s_limit_is_written(tmp_path, model_dir, length):
    target = tmp_path / ("m" * (length - 4) + ".bin")
    outcome = run_bounded("export", model_dir / "stories260K.bin", target, "--version", "1")
    assert outcome.status == 0, outcome.stderr
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def without_root_s_override() -> list[str]:
    """A prefix that makes file permissions apply to this run: root passes them unless its
    capability to override them is dropped (setpriv, from util-linux)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv, so permissions cannot be made to apply")
    dropped = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={dropped}", f"--bounding-set={dropped}"]


@pytest.mark.parametrize("command", [["serve", "SITE", "--port", "0"], ["bench", "--browser", "--site", "SITE"]])
def test_an_unreadable_site_is_named_not_an_internal_error(tmp_path, command):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("page")
    site.chmod(0)
    try:
        arguments = [str(site) if argument == "SITE" else argument for argument in command]
        outcome = run_bounded(command=[*without_root_s_override(), sys.executable, "-m",
                                       "llama2np.cli", *arguments])
    finally:
        site.chmod(0o755)
    assert_refused(outcome, 1, f"cannot use {site / 'index.html'}: permission denied",
                   "check its permissions")


def test_a_refused_write_names_the_output_not_its_temporary_file(tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(OSError) as refused:
        with atomic_output(target) as temporary:
            raise OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert refused.value.filename == str(target) and refused.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_xdg_cache_home_is_named_only_when_it_placed_the_cache(tmp_path, model_dir):
    """In a checkout the cache is the checkout's own: a setting that played no part is not
    blamed for a path that merely lies inside it."""
    (tmp_path / "file").write_text("not a folder")
    outcome = run_bounded("build", "--out", tmp_path / "site", "--cache", tmp_path / "file" / "cache",
                          env={"XDG_CACHE_HOME": str(tmp_path)})
    sentence = assert_refused(outcome, 1, f"cannot use {tmp_path / 'file' / 'cache'}: not a directory")
    assert "XDG_CACHE_HOME" not in sentence
