# The moved models' tables take this app's names (a rename: rows, sequences, indexes and the
# foreign keys that point at them stay), and their content types follow them, so that the
# permissions granted to the staff groups (by buyers/0009), users' own grants and the admin's
# log entries stay attached: what was `buyers.view_team` is `teams.view_team`.

from django.db import migrations

MODELS = (
    'team',
    'teammember',
    'assignment',
    'teamnotification',
    'historicalteam',
    'historicalteammember',
)


def _content_types_move(apps, schema_editor, *, source, target):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    types = ContentType.objects.using(db)
    for model in MODELS:
        moving = types.filter(app_label=source, model=model)
        if not moving.exists():
            continue
        # Only Django's post-migrate signal makes the target meanwhile (a `migrate` stopped
        # between 0001 and here): its permissions are fresh and granted to nobody, while the
        # source's carry the grants. Keep the source's.
        types.filter(app_label=target, model=model).delete()
        moving.update(app_label=target)
    ContentType.objects.clear_cache()


def content_types_to_teams(apps, schema_editor):
    _content_types_move(apps, schema_editor, source='buyers', target='teams')


def content_types_to_buyers(apps, schema_editor):
    _content_types_move(apps, schema_editor, source='teams', target='buyers')


class Migration(migrations.Migration):

    dependencies = [
        ('teams', '0001_initial'),
        # Buyers no longer claims these models (nor their tables) when they are renamed.
        ('buyers', '0010_teams_move_out'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelTable(name='team', table=None),
        migrations.AlterModelTable(name='teammember', table=None),
        migrations.AlterModelTable(name='assignment', table=None),
        migrations.AlterModelTable(name='teamnotification', table=None),
        migrations.AlterModelTable(name='historicalteam', table=None),
        migrations.AlterModelTable(name='historicalteammember', table=None),
        migrations.RunPython(content_types_to_teams, content_types_to_buyers),
    ]
