"""The release kinds and their sign-off chains, read from ``expectations/releases.yaml``.

A chain is a list of steps; each names its Chinese title (统计审核), its action (``review`` for
every step but the last, ``approve`` for the last: approving publishes) and the role that may take
it (a role of the shared accounts model). ``load_signoff`` checks the file and says what is wrong
and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from expectations.yaml_files import read_yaml

RELEASES_FILE = Path(str(resources.files("expectations") / "releases.yaml"))
KNOWN_KINDS = ("monthly", "annual")
KNOWN_ROLES = ("preparer", "reviewer", "approver")


class SignoffConfigError(ValueError):
    """releases.yaml is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Step:
    step_zh: str
    action: str  # review | approve
    role: str


@dataclass(frozen=True)
class ReleaseKind:
    kind: str
    title_zh: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Signoff:
    prepare_role: str
    kinds: dict[str, ReleaseKind]

    def kind(self, name: str) -> ReleaseKind:
        if name not in self.kinds:
            raise SignoffConfigError(f"release kind {name!r} is not declared (one of {', '.join(self.kinds)})")
        return self.kinds[name]


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise SignoffConfigError(f"{where}: must be non-empty text")
    return raw.strip()


def load_signoff(path: Path = RELEASES_FILE) -> Signoff:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SignoffConfigError(f"{path}: expected a mapping with prepare_role and kinds")
    prepare_role = _text(raw.get("prepare_role"), f"{path}: prepare_role")
    if prepare_role not in KNOWN_ROLES:
        raise SignoffConfigError(f"{path}: prepare_role {prepare_role!r} is not one of {', '.join(KNOWN_ROLES)}")
    kinds_raw = raw.get("kinds")
    if not isinstance(kinds_raw, dict) or not kinds_raw:
        raise SignoffConfigError(f"{path}: kinds must map each release kind to its chain")
    kinds: dict[str, ReleaseKind] = {}
    for name, body in kinds_raw.items():
        where = f"{path}: kinds.{name}"
        if name not in KNOWN_KINDS:
            raise SignoffConfigError(f"{where}: unknown kind (one of {', '.join(KNOWN_KINDS)})")
        if not isinstance(body, dict) or not isinstance(body.get("steps"), list) or not body["steps"]:
            raise SignoffConfigError(f"{where}: needs title_zh and a non-empty list of steps")
        steps: list[Step] = []
        for i, step in enumerate(body["steps"]):
            at = f"{where}.steps[{i}]"
            if not isinstance(step, dict):
                raise SignoffConfigError(f"{at}: expected step_zh, action, role")
            action = _text(step.get("action"), f"{at}.action")
            role = _text(step.get("role"), f"{at}.role")
            last = i == len(body["steps"]) - 1
            if action != ("approve" if last else "review"):
                raise SignoffConfigError(f"{at}.action: {action!r}; every step but the last reviews, the last "
                                         "approves")
            if role not in KNOWN_ROLES or role == prepare_role:
                raise SignoffConfigError(f"{at}.role: {role!r} must be a known role other than the preparer's")
            steps.append(Step(_text(step.get("step_zh"), f"{at}.step_zh"), action, role))
        kinds[name] = ReleaseKind(name, _text(body.get("title_zh"), f"{where}.title_zh"), tuple(steps))
    return Signoff(prepare_role, kinds)
