from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, plus a 400 (not a 500) for JSON nested too deeply to parse.

    The standard library's parser stays: orjson is faster, but on a full batch the gain is
    small next to validation and the database's share, and not worth a second parser with
    its own strictness rules (lone surrogates, big integers, deep nesting) to keep in step
    with this one (docs/benchmarks.md, "Standard library JSON parser").
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
