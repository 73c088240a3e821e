"""deploy/RUNBOOK.md: every `ferry` and `ferryd` command in its shell blocks
must exist in the binaries built here (subcommands and flags, as their
--help lists them), every deploy/ path it names must exist, and every
`deploy/make-secrets` command is run as written (in a directory of the
check's) and must make each secret file the other commands use. A command
on the line after a `# TODO` comment is one still being built: it is
reported, and a note says when it has appeared (time to drop the TODO)."""

import re
import shlex
from functools import lru_cache
from pathlib import Path

from common import DEPLOY, MAKE_SECRETS, REPO, binary, fail, log, run

RUNBOOK = DEPLOY / "RUNBOOK.md"
PROGRAMS = ("ferry", "ferryd")


OPTION = re.compile(r"^\s*(?:(-\w),?\s*)?(--[\w-]+)?(?P<value>[ =]\[?<[^>]+>\]?(?:\.\.\.)?)?(?:\s{2,}|$)")


@lru_cache(maxsize=None)
def help_of(program, path):
    """(subcommands, {flag: takes a value}) of `program path... --help`, or
    None if there is no such command."""
    done = run([binary(program), *path, "--help"], ok=False)
    if done.returncode != 0:
        return None
    commands, flags, section = set(), {}, None
    for line in done.stdout.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        elif section == "Commands" and line.split():
            commands.add(line.split()[0])
        elif section == "Options" and line.strip().startswith("-"):
            option = OPTION.match(line)
            if option:
                for flag in option.group(1, 2):
                    if flag:
                        flags[flag] = option.group("value") is not None
    return commands, flags


def problems(program, words):
    """What in `program words...` the binary does not know (empty: all)."""
    path, found, skip_value = [], [], False
    for word in words:
        if skip_value:
            skip_value = False
            continue
        known = help_of(program, tuple(path))
        if known is None:
            return [f"{program} {' '.join(path)}: no such command"]
        commands, flags = known
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            if flag not in flags:
                found.append(f"{program} {' '.join(path)}: no flag {flag}")
            skip_value = flags.get(flag, False) and "=" not in word
        elif word in commands:
            path.append(word)
        elif commands:
            found.append(f"{program} {' '.join(path)}: no subcommand {word}")
            break
    return found


def shell_commands(text):
    """(line number, TODO-marked, words) of each command in the shell
    blocks; `|`, `;`, `&&`, `&` and redirections end a command."""
    in_block, todo, joined, start = False, False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_block, todo = line.strip() in ("```sh", "```bash"), False
            continue
        if not in_block:
            continue
        if line.strip().startswith("# TODO"):
            todo = True
            continue
        if not joined:
            start = number
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1] + " "
            continue
        lexer = shlex.shlex(joined + line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words, marked, joined, todo = list(lexer), todo, "", False
        command = []
        for word in words + [";"]:
            if word and set(word) <= set(";&|<>"):
                if command:
                    yield start, marked, command
                command = []
            else:
                command.append(word)


def commands(text):
    """(line number, TODO-marked, program, arguments) of each ferry/ferryd
    command in the shell blocks."""
    for start, marked, command in shell_commands(text):
        found = program_of(command)
        if found:
            yield start, marked, found[0], found[1]


def installs(text):
    """What the `install` commands of the shell blocks put where: a list of
    (target path, mode, group), a directory's own entry included."""
    found = []
    for _, todo, words in shell_commands(text):
        if todo or not words or words[0] != "install":
            continue
        mode, group, directory, paths, i = 0o755, "root", False, [], 1
        while i < len(words):
            word = words[i]
            if word in ("-m", "-g", "-o"):
                value = words[i + 1]
                if word == "-m":
                    mode = int(value, 8)
                elif word == "-g":
                    group = value
                i += 2
                continue
            if word == "-d":
                directory = True
            elif not word.startswith("-"):
                paths.append(word)
            i += 1
        if directory:
            found += [(path, mode, group) for path in paths]
        elif len(paths) == 2 and not paths[1].endswith("/"):
            found.append((paths[1], mode, group))
        else:
            found += [(f"{paths[-1].rstrip('/')}/{source.rsplit('/', 1)[-1]}", mode, group) for source in paths[:-1]]
    return found


def made_secrets(text, directory):
    """What RUNBOOK.md's `deploy/make-secrets DIRECTORY ...` commands and
    their redirections make: {file name: the names a certificate holds
    (empty for other files)}."""
    made = {}
    for _, todo, words in shell_commands(text):
        if todo or len(words) < 3 or not words[0].endswith("make-secrets") or words[1] != directory:
            continue
        what, args = words[2], words[3:]
        if what == "ca":
            made["ca.pem"] = []
        elif what == "cert":
            made[f"{args[0]}.pem"] = made[f"{args[0]}.key"] = [a.split(":", 1)[-1] for a in args[1:]]
        elif what == "peer-token":
            made["peer.token"] = []
        elif what == "token":
            made[f"{args[0]}.token"] = []
    for path in re.findall(rf">>?\s*{re.escape(directory)}/(\S+)", text):
        made[path] = []
    return made


def program_of(command):
    """The ferry or ferryd a command runs, directly or through kubectl exec
    (after `--`), docker compose exec SERVICE, sudo -u USER, ssh HOST or
    env."""
    words = [w for w in command if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)] if command else []
    if not words:
        return None
    if "--" in words and words[0] == "kubectl":
        words = words[words.index("--") + 1:]
    elif words[0] == "docker" and "exec" in words:
        rest, i = words[words.index("exec") + 1:], 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in ("-e", "--env", "-u", "--user", "-w", "--workdir", "--index") else 1
        words = rest[i + 1:]
    elif words[0] in ("sudo", "ssh"):
        rest, i = words[1:], 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in ("-u", "-g", "-p", "-l", "-i") else 1
        words = rest[i + 1:] if words[0] == "ssh" else rest[i:]
    if words and words[0] == "env":
        words = words[1:]
    if words and words[0].rsplit("/", 1)[-1] in PROGRAMS:
        return words[0].rsplit("/", 1)[-1], words[1:]
    return None


SECRET_FILE = re.compile(r"(?<![\w/.-])((?:deploy/compose/)?secrets/[\w.?*-]+)")


def make_secrets(tmp, text):
    """Runs RUNBOOK.md's make-secrets commands as written, in `tmp` (with
    their `>`/`>>` into a file); every secrets/ file another command uses
    must then be there. Returns how many ran."""
    lines, ran, used = text.splitlines(), 0, set()
    for number, todo, words in shell_commands(text):
        if todo:
            continue
        if words[0] != "deploy/make-secrets":
            used |= {m for word in words for m in SECRET_FILE.findall(word)}
            continue
        done = run([MAKE_SECRETS, Path(tmp) / words[1], *words[2:]], ok=False)
        if done.returncode != 0:
            fail(f"RUNBOOK.md line {number}: {' '.join(words)}: exit {done.returncode}:\n{done.stderr}")
        redirect = re.search(r"(>>?)\s*(\S+)\s*$", lines[number - 1])
        if redirect:
            with open(Path(tmp) / redirect.group(2), "a" if redirect.group(1) == ">>" else "w") as out:
                out.write(done.stdout)
        ran += 1
    missing = sorted(path for path in used if not list(Path(tmp).glob(path)))
    if missing:
        fail(f"RUNBOOK.md uses {', '.join(missing)}, which its make-secrets commands do not make")
    return ran


def check(tmp):
    text = RUNBOOK.read_text()
    for path in sorted(set(re.findall(r"\bdeploy/[\w./@-]+\w", text))):
        # Files the operator makes land in a directory of their own, which
        # keeps them out of git.
        made = (REPO / path).parent / ".gitignore"
        if not (REPO / path).exists() and not made.exists():
            fail(f"RUNBOOK.md names {path}, which does not exist")
    errors, checked, pending = [], 0, []
    for number, todo, program, words in commands(text):
        found = problems(program, words)
        if todo:
            note = "" if found else " (now exists: drop the TODO)"
            pending.append(f"line {number}: {program} {' '.join(words)}{note}")
        elif found:
            errors += [f"RUNBOOK.md line {number}: {p}" for p in found]
        else:
            checked += 1
    if errors:
        fail("\n".join(errors))
    if checked == 0:
        fail("no ferry or ferryd command found in RUNBOOK.md")
    made = make_secrets(tmp, text)
    log(f"  {checked} ferry/ferryd commands exist as written; deploy/ paths exist; {made} make-secrets "
        "commands run and make every secret file the others use")
    for line in pending:
        log(f"  TODO {line}")
