# The ops notifications' models moved to the notifications app with their rows: routing forgets
# them in the migration state only; their tables stay (notifications 0002 renames them).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('routing', '0003_notifications'),
        # The models exist there, on these tables, before they leave here.
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='NotificationDelivery'),
                migrations.DeleteModel(name='NotificationWindow'),
                migrations.DeleteModel(name='NotificationSubscription'),
            ],
            database_operations=[],
        ),
    ]
