"""deploy/RUNBOOK.md: every `ferry` and `ferryd` command in its shell blocks
must exist in the binaries built here (subcommands and flags, as their
--help lists them), and every deploy/ path it names must exist. A command
on the line after a `# TODO` comment is one still being built: it is
reported, and a note says when it has appeared (time to drop the TODO)."""

import re
import shlex
from functools import lru_cache

from common import DEPLOY, REPO, binary, fail, log, run

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


def commands(text):
    """(line number, TODO-marked, program, arguments) of each ferry/ferryd
    command in the shell blocks; `|`, `;`, `&&`, `&` and redirections end
    a command."""
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
                found = program_of(command)
                if found:
                    yield start, marked, found[0], found[1]
                command = []
            else:
                command.append(word)


def program_of(command):
    """The ferry or ferryd a command runs, directly or through kubectl exec
    (after `--`), docker compose exec SERVICE, sudo -u USER or ssh HOST."""
    words = [w for w in command if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)] if command else []
    if not words:
        return None
    if "--" in words and words[0] == "kubectl":
        words = words[words.index("--") + 1:]
    elif words[0] == "docker" and "exec" in words:
        rest = words[words.index("exec") + 1:]
        words = rest[next(i for i, w in enumerate(rest) if not w.startswith("-")) + 1:]
    elif words[0] in ("sudo", "ssh"):
        rest, i = words[1:], 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in ("-u", "-g", "-p", "-l", "-i") else 1
        words = rest[i + 1:] if words[0] == "ssh" else rest[i:]
    if words and words[0].rsplit("/", 1)[-1] in PROGRAMS:
        return words[0].rsplit("/", 1)[-1], words[1:]
    return None


def check(_tmp):
    text = RUNBOOK.read_text()
    for path in sorted(set(re.findall(r"\bdeploy/[\w./@-]+\w", text))):
        if not (REPO / path).exists():
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
    log(f"  {checked} ferry/ferryd commands exist as written; deploy/ paths exist")
    for line in pending:
        log(f"  TODO {line}")
