# The moved tables take this app's names (a rename: the rows stay where they are), and the
# models' content types follow them, so that their permissions (and the staff groups holding
# them), admin log entries and anything else pointing at a content type keep working.

from django.db import migrations

MODELS = ("notificationsubscription", "notificationwindow", "notificationdelivery")


def _content_types_move(apps, schema_editor, *, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        moving = ContentType.objects.using(db).filter(app_label=old, model=model).first()
        if moving is None:
            continue  # a database that never had them: post_migrate makes them afresh
        # A content type made under the new label earlier in this run (create_permissions in a
        # data migration) holds nothing yet; the moving one holds every grant and log entry.
        ContentType.objects.using(db).filter(app_label=new, model=model).delete()
        moving.app_label = new
        moving.save(using=db, update_fields=["app_label"])


def content_types_forwards(apps, schema_editor):
    _content_types_move(apps, schema_editor, old="routing", new="notifications")


def content_types_backwards(apps, schema_editor):
    _content_types_move(apps, schema_editor, old="notifications", new="routing")


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0001_initial'),
        ('routing', '0004_notifications_moved'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelTable(name='notificationsubscription', table=None),
        migrations.AlterModelTable(name='notificationwindow', table=None),
        migrations.AlterModelTable(name='notificationdelivery', table=None),
        migrations.RunPython(content_types_forwards, content_types_backwards),
    ]
