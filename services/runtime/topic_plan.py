"""Which topics a deployment needs and who may do what on them: the source of the production stack's
topic-init and ACL files (deploy/kafka/topics.txt, acls.txt; docs/security.md).

Each stage reads and writes its own topics, owns its tables' changelogs (`<app id>-<table>-changelog`,
compacted) and shares the Faust group and its leader topic; the archive runs as a group of its own.
Reporters may only write reports; subscribers may only read alerts, incidents and fragility;
operators read the outcome of every report as well.
`ensure_topics` checks a worker's stages' topics from here when it may not create them.

    python -m services.runtime.topic_plan deploy/kafka   # rewrite both files from the code
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from schemas.topics import TOPICS, Role
from services.runtime.app import AGENTLESS, archive_group, faust_group
from services.runtime.settings import Settings


@dataclass(frozen=True)
class StageAccess:
    reads: frozenset[Role]
    writes: frozenset[Role]
    tables: tuple[str, ...] = ()


R = Role
STAGES: dict[str, StageAccess] = {
    # validate (reports → by-source) and deduplicate (by-source → accepted/duplicates, receipts)
    "ingest": StageAccess(
        reads=frozenset({R.REPORTS, R.BY_SOURCE}),
        writes=frozenset({R.BY_SOURCE, R.DEAD_LETTERS, R.DUPLICATES, R.ACCEPTED, R.ACCEPTED_BATCHES, R.RECEIPTS,
                          R.STAGE_DEAD_LETTERS}),
        tables=("dedup", "progress"),
    ),
    "correlate": StageAccess(
        reads=frozenset({R.ACCEPTED_BATCHES}),
        writes=frozenset({R.BY_CEASEFIRE, R.INCIDENTS, R.PLACEMENTS, R.STAGE_DEAD_LETTERS}),
        tables=("correlation",),
    ),
    # the alert stage and, in the same worker, the Alertmanager forwarder (reads alerts)
    "alert": StageAccess(
        reads=frozenset({R.BY_CEASEFIRE, R.ALERTS}),
        writes=frozenset({R.ALERTS, R.FRAGILITY, R.STAGE_DEAD_LETTERS}),
        tables=("alerting",),
    ),
    "archive": StageAccess(
        reads=frozenset({R.ACCEPTED, R.DUPLICATES, R.DEAD_LETTERS, R.INCIDENTS, R.ALERTS, R.FRAGILITY}),
        writes=frozenset(),
    ),
}
# principals that are not stages: whoever posts reports, whoever follows the outcome, and the duty
# desk that answers for every report (`dead-letters`, `report-status`, `post --wait`); none writes
# anything but reports, none reads the stages' internal topics or state
PEOPLE: dict[str, StageAccess] = {
    "reporter": StageAccess(reads=frozenset(), writes=frozenset({R.REPORTS})),
    "subscriber": StageAccess(reads=frozenset({R.ALERTS, R.INCIDENTS, R.FRAGILITY}), writes=frozenset()),
    "operator": StageAccess(
        reads=frozenset({R.ALERTS, R.INCIDENTS, R.FRAGILITY, R.ACCEPTED, R.DUPLICATES, R.DEAD_LETTERS,
                         R.STAGE_DEAD_LETTERS, R.RECEIPTS, R.PLACEMENTS}),
        writes=frozenset(),
    ),
}
PRINCIPALS = (*STAGES, *PEOPLE)


@dataclass(frozen=True, order=True)
class PlannedTopic:
    name: str
    cleanup: str  # cleanup.policy: compact or delete
    partitions: int | None = None  # None: the deployment's CEASEFIRE_PARTITIONS (co-partitioned topics)


@dataclass(frozen=True, order=True)
class Grant:
    principal: str
    resource: str  # topic or group
    name: str
    operation: str  # Read, Write, Describe (Kafka's ACL operations)


def changelog(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def leader_topic(group: str) -> str:
    """Faust's leader assignor topic: every worker of a Faust app reads and writes it."""
    return f"{group}-__assignor-__leader"


def stage_roles(stages: list[str] | tuple[str, ...]) -> list[Role]:
    return sorted({role for stage in stages for role in STAGES[stage].reads | STAGES[stage].writes})


def topics(settings: Settings) -> list[PlannedTopic]:
    """Every topic a deployment of every stage needs, with its cleanup policy."""
    planned = {PlannedTopic(settings.topic(spec.role), "compact" if spec.compacted else "delete") for spec in TOPICS.values()}
    for stage, access in STAGES.items():
        planned.add(PlannedTopic(leader_topic(faust_group(settings.app_id, [stage])), "delete", partitions=1))
        planned.update(PlannedTopic(changelog(settings, table), "compact") for table in access.tables)
    return sorted(planned)


def _stage_grants(settings: Settings, stage: str, access: StageAccess) -> set[Grant]:
    faust = faust_group(settings.app_id, [stage])
    grants = {Grant(stage, "group", faust, "Read"), Grant(stage, "topic", leader_topic(faust), "Read"),
              Grant(stage, "topic", leader_topic(faust), "Write")}
    if stage in AGENTLESS:  # its own consumer group (services/archive/writer.py)
        grants.add(Grant(stage, "group", archive_group(settings.app_id), "Read"))
    for table in access.tables:
        grants |= {Grant(stage, "topic", changelog(settings, table), op) for op in ("Read", "Write")}
    return grants


def grants(settings: Settings) -> list[Grant]:
    """Allow-only ACLs, one line each; everything not here is denied (allow.everyone.if.no.acl.found=false)."""
    out: set[Grant] = set()
    for principal, access in (STAGES | PEOPLE).items():
        out |= {Grant(principal, "topic", settings.topic(role), "Read") for role in access.reads}
        out |= {Grant(principal, "topic", settings.topic(role), "Write") for role in access.writes}
        out |= {Grant(principal, "topic", settings.topic(role), "Describe") for role in access.reads | access.writes}
        if principal in STAGES:
            out |= _stage_grants(settings, principal, access)
    return sorted(out)


def render_topics(settings: Settings) -> str:
    lines = [f"{t.name} {t.partitions or 'CEASEFIRE_PARTITIONS'} {t.cleanup}" for t in topics(settings)]
    return HEADER.format(what="topic partitions cleanup.policy") + "\n".join(lines) + "\n"


def render_acls(settings: Settings) -> str:
    lines = [f"{g.principal} {g.resource} {g.name} {g.operation}" for g in grants(settings)]
    return HEADER.format(what="principal resource name operation") + "\n".join(lines) + "\n"


HEADER = """\
# Generated from services/runtime/topic_plan.py for the default settings (app id, topic names):
#   python -m services.runtime.topic_plan deploy/kafka
# read by deploy/kafka/init.sh; the suite checks it matches the code. Columns: {what}
"""


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else Path("deploy/kafka")
    settings = Settings()
    (directory / "topics.txt").write_text(render_topics(settings))
    (directory / "acls.txt").write_text(render_acls(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
