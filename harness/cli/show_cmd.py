"""``capcal show TASK``: print the first documents' chat messages exactly as the model will see them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import CapcalError
from ._help import add_command

HELP = "render a task's prompts for the first documents"

DESCRIPTION = """\
Render the chat messages of a task's first documents exactly as the model will see them, with the gold
answer. TASK is a registered task name or the path of a task spec file (.yaml), which is how a new spec is
checked before it is registered.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "show", HELP, DESCRIPTION)
    parser.add_argument("task", metavar="TASK", help="task name, or path to a task spec .yaml file")
    parser.add_argument("--limit", type=int, default=3, metavar="N", help="number of documents to show (default 3)")
    parser.add_argument("--split", default="eval", choices=("eval", "train", "validation"),
                        help="which split role to show (default eval)")
    parser.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, metavar="DIR",
                        help="local mirror <owner>__<name>/<config>/<split>.jsonl (default $CAPCAL_DATA_DIR, "
                             "else the Hugging Face hub)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per document instead")
    parser.set_defaults(func=run)
    return parser


def load_task(name_or_path: str, registry: Any, data_dir: str | None = None):
    """A :class:`capcal.tasks.Task` from a registered name or from a spec file path."""
    from ..tasks import Task
    from ..taskspec import load_spec

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise CapcalError(f"task spec file not found: {path}")
        return Task(load_spec(path), registry=registry, data_dir=data_dir)
    return registry.task(name_or_path, data_dir=data_dir)


def gold_text(fields: dict) -> str:
    """The gold answer as shown to a person: the answer, the option text for letters, the aliases."""
    from ..tasks import LETTERS

    gold = str(fields.get("answer", ""))
    choices = fields.get("choices")
    if choices and len(gold) == 1 and gold in LETTERS and LETTERS.index(gold) < len(choices):
        gold += f") {choices[LETTERS.index(gold)]}"
    aliases = fields.get("aliases")
    if aliases and list(aliases) != [fields.get("answer")]:
        gold += f"   (aliases: {' | '.join(map(str, aliases))})"
    return gold


def render_show(task: Any, limit: int = 3, split: str = "eval", as_json: bool = False) -> str:
    """The text ``capcal show`` prints (a library user can call it too)."""
    if limit < 1:
        raise CapcalError(f"--limit must be at least 1, got {limit}")
    examples = task.examples(split, limit=limit)
    out: list[str] = []
    if not as_json:
        spec = task.spec
        gen = " ".join(f"{k}={v}" for k, v in task.generation.items())
        out.append(f"task {task.name}: {task.source(split)}; grader {spec.grader}; template {spec.template}")
        out.append(f"generation: {gen}")
        if spec.choices_shuffle:
            out.append(f"choices shuffled with seed {spec.choices_shuffle['seed']}")
    for ex in examples:
        messages = task.render(ex)
        if as_json:
            out.append(json.dumps({"index": ex.index, "id": ex.id, "messages": messages,
                                   "answer": ex.fields.get("answer")}, ensure_ascii=False))
            continue
        out.append("")
        out.append(f"=== document {ex.index} (id {ex.id}) ===")
        for msg in messages:
            out.append(f"--- {msg['role']} ---")
            out.append(msg["content"])
        out.append("--- gold answer ---")
        out.append(gold_text(ex.fields))
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from ..registry import get_registry

    task = load_task(args.task, get_registry(), args.data_dir)
    print(render_show(task, limit=args.limit, split=args.split, as_json=args.json), end="")
    return 0
