# The internal sales teams' models now belong to the teams app (teams/0001 takes them over on the
# same tables): buyers forgets them, state only; no row or table is touched here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('buyers', '0009_internal_teams'),
        ('teams', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                # The same column and constraint, pointing at the same table under its new owner.
                migrations.AlterField(
                    model_name='contract',
                    name='team',
                    field=models.ForeignKey(blank=True, help_text='Team delivery: the internal team whose members are assigned the leads.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='contracts', to='teams.team'),
                ),
                migrations.AlterField(
                    model_name='historicalcontract',
                    name='team',
                    field=models.ForeignKey(blank=True, db_constraint=False, help_text='Team delivery: the internal team whose members are assigned the leads.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='teams.team'),
                ),
                migrations.DeleteModel(name='TeamNotification'),
                migrations.DeleteModel(name='Assignment'),
                migrations.DeleteModel(name='HistoricalTeamMember'),
                migrations.DeleteModel(name='TeamMember'),
                migrations.DeleteModel(name='HistoricalTeam'),
                migrations.DeleteModel(name='Team'),
            ],
        ),
    ]
