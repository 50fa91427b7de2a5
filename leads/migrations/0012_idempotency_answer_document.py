"""Idempotent answers are kept as their document and format, rendered again at each replay.

Records kept until now hold the bytes first sent: JSON as it was, XML or key=value text as
leads.profiles.answer_bytes wrote them. Each is read back into the document it was rendered
from (which renders to the same bytes again), so every record stays replayable.
"""

import json

from defusedxml.ElementTree import fromstring
from django.db import migrations, models


def _format(headers):
    content_type = (headers or {}).get("Content-Type", "")
    if "xml" in content_type:
        return "xml"
    if content_type.startswith("text/plain"):
        return "text"
    return "json"


def _document(items, errors):
    """The JSON document whose answer_bytes are these (name, value) items and errors."""
    document = {}
    problem = any(name == "http_status" for name, _ in items)
    for name, value in items:
        if problem and name == "status":
            continue  # "error": the problem's own status is http_status
        if problem and name == "http_status":
            document["status"] = int(value)
        elif problem and name == "reason":
            document["detail"] = value
        else:
            document[name] = value
    if errors:
        document["errors"] = errors
    return document


def _from_xml(body):
    root = fromstring(body)
    items = [(child.tag, child.text or "") for child in root if child.tag != "errors"]
    errors = {}
    for error in root.iter("error"):
        errors.setdefault(error.get("field"), []).append(error.text or "")
    return _document(items, errors)


def _from_text(body):
    items, errors = [], {}
    for line in body.decode().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("error."):
            errors.setdefault(name.removeprefix("error."), []).append(value)
        else:
            items.append((name, value))
    return _document(items, errors)


READERS = {"json": json.loads, "xml": _from_xml, "text": _from_text}


def documents_from_bytes(apps, schema_editor):
    IdempotencyRecord = apps.get_model("leads", "IdempotencyRecord")
    for record in IdempotencyRecord.objects.all().iterator():
        answer_format = _format(record.response_headers)
        try:
            document = READERS[answer_format](bytes(record.response_body))
        except (ValueError, SyntaxError):  # SyntaxError: XML's ParseError
            # Never written by intake; without its answer a retry is ingested again (and meets
            # the duplicate check) rather than answered with something it was never sent.
            record.delete()
            continue
        record.response_document = json.dumps(document, separators=(",", ":"))
        record.answer_format = answer_format
        record.save(update_fields=["response_document", "answer_format"])


def bytes_from_documents(apps, schema_editor):
    from leads.profiles import answer_bytes

    IdempotencyRecord = apps.get_model("leads", "IdempotencyRecord")
    for record in IdempotencyRecord.objects.all().iterator():
        document = json.loads(record.response_document)
        if record.answer_format == "json":
            record.response_body = json.dumps(document, separators=(",", ":")).encode()
        else:
            record.response_body = answer_bytes(record.answer_format, document)[0]
        record.save(update_fields=["response_body"])


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0011_lead_consumer_hashes"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="response_document",
            field=models.TextField(default="{}"),
        ),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="answer_format",
            field=models.CharField(default="json", max_length=8),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_body",
            field=models.BinaryField(default=b""),
        ),
        migrations.RunPython(documents_from_bytes, bytes_from_documents),
        migrations.RemoveField(
            model_name="idempotencyrecord",
            name="response_body",
        ),
    ]
