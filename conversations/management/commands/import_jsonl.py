import json
import sys
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from tqdm import tqdm

from conversations import services
from conversations.errors import validation_errors
from conversations.ingest_validation import conversation_from_item
from conversations.serializers import ConversationInputSerializer
from conversations.services import ConversationIn

BATCH_SIZE = 1_000


class Command(BaseCommand):
    help = (
        "Import the tutorial tracker's analytics.jsonl files. Idempotent by session_id (a re-import "
        "replaces, never duplicates). Bad lines are reported with their line number and skipped; the "
        "command then exits with status 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument("--no-progress", action="store_true", help="Do not show the progress bar.")

    def handle(self, *args, paths: list[Path], no_progress: bool, **options):
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        totals = {"lines": 0, "created": 0, "updated": 0, "bad": 0, "blank": 0}
        for path in paths:
            self._import(path, totals, show_progress=not no_progress and sys.stderr.isatty())
        stored = totals["created"] + totals["updated"]
        self.stdout.write(
            f"Imported {stored:,} conversations from {totals['lines']:,} lines "
            f"in {len(paths)} file(s): {totals['created']:,} new, {totals['updated']:,} replaced, "
            f"{totals['bad']:,} bad line(s) skipped."
        )
        if totals["bad"]:
            sys.exit(1)

    def _import(self, path: Path, totals: dict, *, show_progress: bool) -> None:
        batch = []
        received_at = timezone.now()
        serializer = ConversationInputSerializer()
        with (
            path.open("rb") as file,
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                desc=path.name,
                disable=not show_progress,
            ) as progress,
        ):
            for number, raw in enumerate(file, start=1):
                progress.update(len(raw))
                totals["lines"] += 1
                if not raw.strip():
                    totals["blank"] += 1
                    continue
                conversation, reason = self._parse(raw, serializer, received_at=received_at)
                if reason:
                    totals["bad"] += 1
                    progress.write(f"{path}:{number}: {reason}", file=self.stderr._out)
                    continue
                batch.append(conversation)
                if len(batch) >= BATCH_SIZE:
                    self._flush(batch, totals)
            self._flush(batch, totals)

    @staticmethod
    def _parse(
        raw: bytes, serializer: ConversationInputSerializer, *, received_at: datetime
    ) -> tuple[ConversationIn | None, str | None]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as error:
            return None, f"not valid JSON ({error})"
        if not isinstance(data, dict):
            return None, "not a JSON object"
        # Plain-Python checks first (conversations/ingest_validation.py); the serializer
        # decides, and words the reason, whenever they are not sure.
        conversation = conversation_from_item(data, received_at=received_at, now=timezone.now())
        if conversation is not None:
            return conversation, None
        # One serializer for all lines, as ListSerializer does with its child: building a
        # serializer deep-copies its fields, which cost more than validating the line.
        try:
            attrs = serializer.run_validation(data)
        except ValidationError as error:
            errors = validation_errors(error.detail, per_item=False)
            return None, "; ".join(f"{e['field'] or 'line'}: {e['message']}" for e in errors)
        return serializer.to_conversation_in(attrs, received_at=received_at), None

    @staticmethod
    def _flush(batch: list, totals: dict) -> None:
        if batch:
            result = services.conversations_ingest(items=batch)
            totals["created"] += result.created
            totals["updated"] += result.updated
            batch.clear()
