import contextlib
import json
import queue
import sys
import threading
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

# Conversations per transaction. Each holds an advisory lock per session id until it commits,
# and live ingestion shares PostgreSQL's lock table (a few thousand entries by default).
BATCH_SIZE = 2_000
# Parsed batches waiting for the writer, at most.
QUEUED_BATCHES = 4


class _Stopped(Exception):
    """The writer stopped: the parser thread ends."""


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
        """Parse in a second thread while this one writes: parsing is Python, a write mostly
        waits on PostgreSQL (the driver lets go of the GIL), so on two cores the two overlap.
        The database is only used from this thread (its connection, its transaction).
        """
        batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)  # bounds memory
        stop = threading.Event()  # set when the writer gives up (a database error)
        with tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=path.name,
            disable=not show_progress,
        ) as progress:
            parser = threading.Thread(
                target=self._parse_file,
                args=(path, totals, progress, batches, stop),
                name="import-jsonl-parser",
                daemon=True,
            )
            parser.start()
            try:
                while (batch := batches.get()) is not None:
                    if isinstance(batch, BaseException):
                        raise batch
                    result = services.conversations_ingest(items=batch)
                    totals["created"] += result.created
                    totals["updated"] += result.updated
            finally:
                stop.set()
                parser.join()

    def _parse_file(
        self, path: Path, totals: dict, progress: tqdm, batches: queue.Queue, stop: threading.Event
    ) -> None:
        """The parser thread: batches of valid conversations onto `batches`, then None."""

        def hand_over(item) -> None:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        try:
            batch: list[ConversationIn] = []
            received_at = timezone.now()
            serializer = ConversationInputSerializer()
            with path.open("rb") as file:
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
                        hand_over(batch)
                        batch = []
            if batch:
                hand_over(batch)
            hand_over(None)
        except _Stopped:
            pass
        except BaseException as error:  # handed to the writing thread, which raises it
            with contextlib.suppress(_Stopped):
                hand_over(error)

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
