"""Builds corpus.json.gz: every state-machine file of the public sample collections, read from
local git clones at the commits named in tests/asl/realworld/README.md.

    python -m tests.asl.collection.build OWNER/NAME=GIT_DIR ...

A collected file is an ASL document (``*.asl.json``, ``*.asl.yaml``, ``*.asl.yml``) or a
CloudFormation / SAM template (``template.yaml``, ``*.template.json``, ...) that declares an
``AWS::StepFunctions::StateMachine`` or ``AWS::Serverless::StateMachine``. Files under
node_modules and cdk.out (build output) are left out. The local files a template's
``DefinitionUri`` names are collected with it.
"""

import gzip
import json
import posixpath
import re
import subprocess
import sys
from pathlib import Path

ASL = re.compile(r"\.asl\.(json|ya?ml)$")
TEMPLATE = re.compile(r"(^|/)([^/]*template[^/]*)\.(ya?ml|json)$", re.IGNORECASE)
SKIP = re.compile(r"(^|/)(node_modules|cdk\.out|\.aws-sam)/")
MACHINE_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
OUT = Path(__file__).parent / "corpus.json.gz"


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "-C", git_dir, *args], capture_output=True, text=True, check=True).stdout


def collect(repo: str, git_dir: str) -> dict[str, object]:
    commit = _git(git_dir, "rev-parse", "HEAD").strip()
    files = {}
    for path in _git(git_dir, "ls-tree", "-r", "--name-only", commit).splitlines():
        if SKIP.search(path) or not (ASL.search(path) or TEMPLATE.search(path)):
            continue
        try:
            text = _git(git_dir, "show", f"{commit}:{path}")
        except (subprocess.CalledProcessError, UnicodeDecodeError):
            continue
        if ASL.search(path) or any(t in text for t in MACHINE_TYPES):
            files[path] = text
    for path, text in list(files.items()):  # the local files templates name in DefinitionUri
        for uri in re.findall(r"DefinitionUri[\"']?\s*:\s*[\"']?([^\s\"',}]+)", text):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), uri))
            if target not in files and not target.startswith(".."):
                try:
                    files[target] = _git(git_dir, "show", f"{commit}:{target}")
                except (subprocess.CalledProcessError, UnicodeDecodeError):
                    pass
    return {"commit": commit, "files": dict(sorted(files.items()))}


def main(args: list[str]) -> None:
    corpus = {}
    for arg in args:
        repo, git_dir = arg.split("=", 1)
        corpus[repo] = collect(repo, git_dir)
    OUT.write_bytes(gzip.compress(json.dumps(corpus, sort_keys=True).encode(), mtime=0))
    for repo, part in corpus.items():
        sys.stdout.write(f"{repo} {part['commit']} {len(part['files'])}\n")  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
