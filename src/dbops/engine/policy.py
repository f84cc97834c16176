"""Safety policies per environment, and the one check point that applies them.

What ``protected: true`` implies, each key settable on its own in dbops.yaml:

- ``confirm: name``: confirming a destructive operation means typing the database name
  (elsewhere ``yes``: answer yes/no);
- ``allow_reset: false`` and ``allow_seed: false``: reset and seed are refused;
- ``backup_before: [reset, rollback, restore]``: an automatic backup is taken before them
  (elsewhere before reset and restore), which ``--no-backup`` may not skip. ``migrate`` may
  be added to the list.

``allow_force`` (default true) says whether ``--force`` is accepted at all.

Which operations need a confirmation: reset and restore everywhere; rollback where the
environment is protected. Each step says which policy action it counts as (its
``policy_action``). arm() applies the policy to a pipeline's steps as a whole before it
starts: what the policy forbids is refused then, and a confirm step (dbops.steps.confirm)
that asks once goes after connecting (and the steps that only read), before the first step
that changes something. Nothing here talks to the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dbops.config.model import Environment
from dbops.engine.options import BackupOptions
from dbops.engine.pipeline import Step, reads_only
from dbops.errors import PolicyRefused

REASONS = {  # an automatic backup's reason, in its manifest
    "reset": "before reset",
    "rollback": "before migrate-rollback",
    "restore": "before restore",
    "migrate": "before migrate",
}
_NOUN = {"reset": "Reset", "seed": "Seeding"}
_PAST = {"reset": "reset", "seed": "seeded"}


@dataclass(frozen=True)
class Policy:
    environment: str
    protected: bool
    confirm: str  # "name" or "yes"
    allow_force: bool
    allow_reset: bool
    allow_seed: bool
    backup_before: frozenset[str]
    lint_before_migrate: bool = False  # validate_before_migrate

    @classmethod
    def of(cls, env: Environment) -> Policy:
        def default(value: bool | None) -> bool:
            return (not env.protected) if value is None else value

        return cls(
            environment=env.name,
            protected=env.protected,
            confirm=env.confirm or ("name" if env.protected else "yes"),
            allow_force=env.allow_force,
            allow_reset=default(env.allow_reset),
            allow_seed=default(env.allow_seed),
            backup_before=frozenset(
                env.backup_before
                if env.backup_before is not None
                else ("reset", "rollback", "restore")
                if env.protected
                else ("reset", "restore")
            ),
            lint_before_migrate=env.lints_before_migrate,
        )

    def needs_confirmation(self, action: str) -> bool:
        return action in ("reset", "restore") or (self.protected and action == "rollback")

    def refusal(self, actions: Sequence[str], force: bool, no_backup: bool = False) -> PolicyRefused | None:
        """The first rule these actions (and flags) break here, if any."""
        env = self.environment
        backed_up = [a for a in actions if a in self.backup_before]
        if no_backup and backed_up and self.protected:
            return PolicyRefused(
                f"--no-backup is refused in the protected environment {env}: "
                f"it takes a backup before {', '.join(dict.fromkeys(backed_up))}",
                "Run it without --no-backup",
            )
        for action, allowed in (("reset", self.allow_reset), ("seed", self.allow_seed)):
            if action in actions and not allowed:
                where = (
                    f"the protected environment {env}"
                    if self.protected
                    else f"the environment {env} (allow_{action}: false)"
                )
                return PolicyRefused(
                    f"{_NOUN[action]} is refused in {where}",
                    f"Set allow_{action}: true for {env} in dbops.yaml if it really may be {_PAST[action]}",
                )
        if force and not self.allow_force:
            return PolicyRefused(
                f"--force is not accepted in the environment {env} (allow_force: false)",
                "Run it on a terminal without --force, and confirm when asked",
            )
        return None


def arm(
    steps: list[Step], policy: Policy, *, force: bool, no_backup: bool = False, dry_run: bool = False
) -> list[Step]:
    """Refuse now what the policy forbids (before even connecting); else add the automatic
    backup it asks for, and the confirmation after connecting and the steps that only read,
    before anything that changes the database. A dry run refuses nothing: its plan shows it."""
    actions = [s.policy_action for s in steps if s.policy_action is not None]
    refusal = policy.refusal(actions, force, no_backup)
    if refusal is not None and not dry_run:
        raise refusal
    if not no_backup:
        steps = _with_backup(steps, policy)
    # steps that find something the question must say (a backup of another database)
    notes = [note for s in steps if (note := getattr(s, "confirmation_note", None)) is not None]
    # what the steps will do, that the question shows above it (a backup file, migrations, counts)
    details = [d for s in steps if (d := getattr(s, "confirmation_details", None)) is not None]
    if refusal is None and not any(policy.needs_confirmation(a) for a in actions):
        return lint_first(steps, policy)  # nothing to confirm: no confirm step (and no prompt loaded)
    from dbops.steps.confirm import Guard  # lazy: only a run with something to confirm asks

    guard = Guard(policy, actions, force=force, refusal=refusal, notes=notes, details=details)
    return lint_first(steps, policy, then=guard)


def lint_first(steps: list[Step], policy: Policy, then: Step | None = None) -> list[Step]:
    """validate_before_migrate: the lint of what migrate will apply runs with the other checks,
    after connecting and the steps that only read, before anything changes (and before the
    confirmation, `then`), not when migrate starts. After a reset's drop there is nothing
    left for a migration to lock: no lint then."""
    at = next((i for i, step in enumerate(steps) if not reads_only(step)), len(steps))
    lint: list[Step] = []
    if policy.lint_before_migrate:
        # lazy: only a run that lints before migrating loads them (dbops status does not)
        from dbops.steps.lint import Lint
        from dbops.steps.migrate import Migrate

        for step in steps:
            if step.name == "drop":
                break
            if isinstance(step, Migrate):
                opts = step.options
                lint = [Lint(start=opts.start, end=opts.end, accept=opts.accept_changes, policy=True)]
                break
    return [*steps[:at], *lint, *([then] if then is not None else []), *steps[at:]]


def _with_backup(steps: list[Step], policy: Policy) -> list[Step]:
    """An automatic backup right before the first step the policy names in backup_before,
    unless the pipeline takes a backup before it anyway. Undos of the steps after it may
    restore it."""
    for at, step in enumerate(steps):
        if step.name == "backup":
            return steps
        action = step.policy_action
        if action in policy.backup_before:
            from dbops.steps.backup import Backup  # lazy: only a run that backs up loads pg_dump's side

            backup = Backup(BackupOptions(), automatic=True, reason=REASONS[action])
            return [*steps[:at], backup, *steps[at:]]
    return steps
