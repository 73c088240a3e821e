"""Reads deploy/container/Dockerfile: what the final image holds and how it
starts, and lays that image out as a directory (the image's "root") on this
machine, since no Docker daemon is here to build it."""

import json
import re
import shlex
from pathlib import Path

from common import DEPLOY, REPO, binary, fail

DOCKERFILE = DEPLOY / "container" / "Dockerfile"


def instructions(path=DOCKERFILE):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and
    comments (also inside continuations) dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _words(rest):
    """An exec-form (JSON array) or shell-form argument list."""
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]


class Image:
    def __init__(self, path=DOCKERFILE):
        stages, current = {}, None
        for word, rest in instructions(path):
            if word == "FROM":
                parts = rest.split()
                current = {"name": parts[2] if len(parts) > 2 else None, "steps": []}
                stages[current["name"] or len(stages)] = current
            elif current is not None:
                current["steps"].append((word, rest))
        if current is None:
            fail(f"{path}: no FROM")
        self.stages = stages
        self.final = current["steps"]
        self.env, self.copies, self.expose, self.volumes = {}, [], [], []
        self.entrypoint, self.cmd, self.user, self.stopsignal, self.workdir = [], [], None, "SIGTERM", "/"
        for word, rest in self.final:
            if word == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    self.env[key] = value
            elif word == "COPY":
                self.copies.append(self._copy(rest))
            elif word == "EXPOSE":
                self.expose += [int(p.split("/")[0]) for p in rest.split()]
            elif word == "VOLUME":
                self.volumes += _words(rest) if rest.startswith("[") else rest.split()
            elif word == "ENTRYPOINT":
                self.entrypoint = _words(rest)
            elif word == "CMD":
                self.cmd = _words(rest)
            elif word == "USER":
                self.user = rest
            elif word == "STOPSIGNAL":
                self.stopsignal = rest
            elif word == "WORKDIR":
                self.workdir = rest

    def _copy(self, rest):
        words = shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        return stage, paths[:-1], paths[-1]

    def built_binaries(self, stage):
        """The binaries a stage's `cargo build` makes (`--bin NAME`)."""
        runs = " ".join(rest for word, rest in self.stages[stage]["steps"] if word == "RUN")
        if "cargo build" not in runs:
            fail(f"stage {stage} of the Dockerfile runs no cargo build")
        return set(re.findall(r"--bin\s+(\S+)", runs))

    def files(self):
        """Every file the final image gets by COPY: image path -> the file on
        this machine (a binary built here, or a file of the repository)."""
        result = {}
        for stage, sources, dest in self.copies:
            if stage is not None:
                built = self.built_binaries(stage)
            for source in sources:
                if stage is None:
                    local = REPO / source
                    if not local.exists():
                        fail(f"Dockerfile copies {source}, which is not in the repository")
                else:
                    name = Path(source).name
                    if name not in built:
                        fail(f"Dockerfile copies {source} from stage {stage}, whose cargo build makes {built}")
                    local = binary(name)
                target = dest + Path(source).name if dest.endswith("/") else dest
                result[target] = local
        return result

    def lay_out(self, root, localize):
        """Builds the image as a directory `root`: binaries linked, text files
        copied through `localize` (which maps addresses and paths)."""
        for target, local in self.files().items():
            path = Path(str(root) + target)
            path.parent.mkdir(parents=True, exist_ok=True)
            if local.suffix in (".toml", ".conf", ".env"):
                path.write_text(localize(local.read_text()))
            else:
                path.symlink_to(local)
        for volume in self.volumes:
            Path(str(root) + volume).mkdir(parents=True, exist_ok=True)

    def uid(self):
        if not self.user or not self.user.split(":")[0].isdigit():
            fail(f"USER {self.user!r}: give a numeric uid, so runAsNonRoot can check it")
        return int(self.user.split(":")[0])
