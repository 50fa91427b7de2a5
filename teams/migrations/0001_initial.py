# The teams' models, moved here from buyers (0009_internal_teams) without touching a row.
#
# State only: the models are taken over on the tables buyers created (db_table), while
# buyers/0010 forgets them; 0002 then renames the tables and moves the content types.

import buyers.fields
import buyers.models
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import simple_history.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('buyers', '0009_internal_teams'),
        ('leads', '0008_lead_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables exist: nothing is created.
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Team',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=160, unique=True)),
                        ('weighted_by_capacity', models.BooleanField(default=False, help_text="Share leads in proportion to each member's capacity; otherwise equally.")),
                        ('existing_owner_days', models.PositiveSmallIntegerField(blank=True, default=365, help_text='A consumer (same e-mail or phone) assigned to a member within this many days goes to that member again while they are available; blank: always by rotation.', null=True, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(3650)])),
                        ('claim_timeout_minutes', models.PositiveSmallIntegerField(default=15, help_text='A lead not claimed within this many minutes goes to the next member.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(1440)])),
                        ('when_nobody_available', models.CharField(choices=[('queue', "Queue the lead; assign it when a member's hours open"), ('pass', 'Pass the lead on to the next contract (the team declines it)')], default='queue', help_text='When no member is in their hours and under their quota.', max_length=5)),
                        ('notify_by_email', models.BooleanField(default=True, help_text='E-mail the assigned member the lead and a link to claim it.')),
                        ('slack_webhook_url', buyers.fields.EncryptedTextField(blank=True, help_text="Also post it to this Slack channel's incoming webhook, mentioning the member (kept encrypted; it is a secret).")),
                        ('acknowledge_consumer', models.BooleanField(default=False, help_text="E-mail the consumer at once that the team has the request, and when it will be in touch (outside hours: when the first member's hours open).")),
                        ('acknowledgement_text', models.TextField(blank=True, default='Hi {first_name},\n\nThank you for your request. {team} has it and will be in touch {when}.\n', help_text="The consumer's e-mail; {first_name}, {team} and {when} are filled in.")),
                        ('rotation', models.JSONField(blank=True, default=dict, editable=False)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'buyers_team',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalTeam',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('name', models.CharField(db_index=True, max_length=160)),
                        ('weighted_by_capacity', models.BooleanField(default=False, help_text="Share leads in proportion to each member's capacity; otherwise equally.")),
                        ('existing_owner_days', models.PositiveSmallIntegerField(blank=True, default=365, help_text='A consumer (same e-mail or phone) assigned to a member within this many days goes to that member again while they are available; blank: always by rotation.', null=True, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(3650)])),
                        ('claim_timeout_minutes', models.PositiveSmallIntegerField(default=15, help_text='A lead not claimed within this many minutes goes to the next member.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(1440)])),
                        ('when_nobody_available', models.CharField(choices=[('queue', "Queue the lead; assign it when a member's hours open"), ('pass', 'Pass the lead on to the next contract (the team declines it)')], default='queue', help_text='When no member is in their hours and under their quota.', max_length=5)),
                        ('notify_by_email', models.BooleanField(default=True, help_text='E-mail the assigned member the lead and a link to claim it.')),
                        ('acknowledge_consumer', models.BooleanField(default=False, help_text="E-mail the consumer at once that the team has the request, and when it will be in touch (outside hours: when the first member's hours open).")),
                        ('acknowledgement_text', models.TextField(blank=True, default='Hi {first_name},\n\nThank you for your request. {team} has it and will be in touch {when}.\n', help_text="The consumer's e-mail; {first_name}, {team} and {when} are filled in.")),
                        ('created_at', models.DateTimeField(blank=True, editable=False)),
                        ('updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'buyers_historicalteam',
                        'verbose_name': 'historical team',
                        'verbose_name_plural': 'historical teams',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='HistoricalTeamMember',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('position', models.PositiveSmallIntegerField(default=0, help_text='Order in the rotation (ties go to the lower).')),
                        ('name', models.CharField(blank=True, max_length=120)),
                        ('email', models.EmailField(blank=True, help_text='Where their leads are e-mailed.', max_length=254)),
                        ('slack_user_id', models.CharField(blank=True, help_text="U012AB3CD: mentioned in the team's Slack message.", max_length=24, verbose_name='Slack user id')),
                        ('active', models.BooleanField(default=True, help_text='Off: gets no leads (left the team, or not started).')),
                        ('away', models.BooleanField(default=False, help_text='Opted out for now (holiday, sick, busy): gets no leads.')),
                        ('time_zone', models.CharField(default='America/New_York', help_text='Working hours and the daily quota are counted in this time zone.', max_length=64, validators=[buyers.models.validate_time_zone])),
                        ('working_hours', models.CharField(blank=True, help_text='E.g. Mon-Fri 09:00-17:00, Sat 10:00-14:00 (overnight: Fri 22:00-06:00); blank: any time.', max_length=500)),
                        ('daily_quota', models.PositiveIntegerField(blank=True, help_text='Most leads a day, their day from local midnight; blank: no limit.', null=True)),
                        ('capacity', models.PositiveSmallIntegerField(default=1, help_text='Share when the team weights by capacity: 2 gets twice the leads of 1.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(1000)])),
                        ('created_at', models.DateTimeField(blank=True, editable=False)),
                        ('updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('user', models.ForeignKey(blank=True, db_constraint=False, help_text='Their staff account, if any: lets them claim from the admin; gives name and e-mail where those are blank.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('team', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='teams.team')),
                    ],
                    options={
                        'db_table': 'buyers_historicalteammember',
                        'verbose_name': 'historical team member',
                        'verbose_name_plural': 'historical team members',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='TeamMember',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('position', models.PositiveSmallIntegerField(default=0, help_text='Order in the rotation (ties go to the lower).')),
                        ('name', models.CharField(blank=True, max_length=120)),
                        ('email', models.EmailField(blank=True, help_text='Where their leads are e-mailed.', max_length=254)),
                        ('slack_user_id', models.CharField(blank=True, help_text="U012AB3CD: mentioned in the team's Slack message.", max_length=24, verbose_name='Slack user id')),
                        ('active', models.BooleanField(default=True, help_text='Off: gets no leads (left the team, or not started).')),
                        ('away', models.BooleanField(default=False, help_text='Opted out for now (holiday, sick, busy): gets no leads.')),
                        ('time_zone', models.CharField(default='America/New_York', help_text='Working hours and the daily quota are counted in this time zone.', max_length=64, validators=[buyers.models.validate_time_zone])),
                        ('working_hours', models.CharField(blank=True, help_text='E.g. Mon-Fri 09:00-17:00, Sat 10:00-14:00 (overnight: Fri 22:00-06:00); blank: any time.', max_length=500)),
                        ('daily_quota', models.PositiveIntegerField(blank=True, help_text='Most leads a day, their day from local midnight; blank: no limit.', null=True)),
                        ('capacity', models.PositiveSmallIntegerField(default=1, help_text='Share when the team weights by capacity: 2 gets twice the leads of 1.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(1000)])),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='members', to='teams.team')),
                        ('user', models.ForeignKey(blank=True, help_text='Their staff account, if any: lets them claim from the admin; gives name and e-mail where those are blank.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='team_memberships', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'buyers_teammember',
                        'ordering': ['team', 'position', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='Assignment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued (nobody available)'), ('assigned', 'Assigned, awaiting claim'), ('claimed', 'Claimed'), ('reassigned', 'Not claimed in time: reassigned'), ('expired', 'Not claimed in time: nobody left to take it')], max_length=10)),
                        ('reason', models.CharField(blank=True, choices=[('round_robin', 'Round robin'), ('weighted', 'Weighted by capacity'), ('existing_owner', 'Existing owner'), ('reassigned', 'Reassigned from another member'), ('queued_then_assigned', 'Queued, then assigned when hours opened')], max_length=20)),
                        ('note', models.CharField(blank=True, help_text='Why this member, in words.', max_length=500)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('assigned_at', models.DateTimeField(blank=True, null=True)),
                        ('due_by', models.DateTimeField(blank=True, help_text='Reassigned when not claimed by then.', null=True)),
                        ('claimed_at', models.DateTimeField(blank=True, null=True)),
                        ('closed_at', models.DateTimeField(blank=True, help_text='When it was reassigned or expired.', null=True)),
                        ('contract', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='team_assignments', to='buyers.contract')),
                        ('lead', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='team_assignments', to='leads.lead')),
                        ('previous', models.ForeignKey(blank=True, help_text='The assignment this one took over from.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='teams.assignment')),
                        ('team', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='assignments', to='teams.team')),
                        ('member', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='assignments', to='teams.teammember')),
                    ],
                    options={
                        'db_table': 'buyers_assignment',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='TeamNotification',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('purpose', models.CharField(choices=[('assigned', 'New lead for the member'), ('acknowledgement', 'Acknowledgement to the consumer')], max_length=15)),
                        ('channel', models.CharField(choices=[('email', 'E-mail'), ('slack', 'Slack (incoming webhook)')], max_length=5)),
                        ('recipient', models.CharField(help_text='Address, or the webhook (masked).', max_length=255)),
                        ('payload', models.JSONField(default=dict, help_text='Slack: the JSON posted; e-mail: subject, recipients and body.')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=7)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('error', models.CharField(blank=True, max_length=500)),
                        ('latency_ms', models.PositiveIntegerField(blank=True, null=True)),
                        ('attempt_log', models.JSONField(blank=True, default=list)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                        ('assignment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='teams.assignment')),
                    ],
                    options={
                        'db_table': 'buyers_teamnotification',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='teammember',
                    constraint=models.CheckConstraint(condition=models.Q(('capacity__gte', 1)), name='team_member_capacity_positive'),
                ),
                migrations.AddConstraint(
                    model_name='teammember',
                    constraint=models.UniqueConstraint(condition=models.Q(('user__isnull', False)), fields=('team', 'user'), name='one_membership_per_user_and_team'),
                ),
                migrations.AddIndex(
                    model_name='assignment',
                    index=models.Index(fields=['member', 'assigned_at'], name='assignment_member_day'),
                ),
                migrations.AddIndex(
                    model_name='assignment',
                    index=models.Index(condition=models.Q(('status', 'assigned')), fields=['due_by'], name='assignment_awaiting_claim'),
                ),
                migrations.AddIndex(
                    model_name='assignment',
                    index=models.Index(condition=models.Q(('status', 'queued')), fields=['team', 'created_at'], name='assignment_queued'),
                ),
                migrations.AddConstraint(
                    model_name='assignment',
                    constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('queued', 'assigned', 'claimed'))), fields=('lead', 'team'), name='one_open_assignment_per_lead_and_team'),
                ),
                migrations.AddConstraint(
                    model_name='assignment',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('member__isnull', True), ('status', 'queued')), models.Q(models.Q(('status', 'queued'), _negated=True), ('member__isnull', False)), _connector='OR'), name='assignment_member_unless_queued'),
                ),
                migrations.AddIndex(
                    model_name='teamnotification',
                    index=models.Index(fields=['status', 'created_at'], name='team_notification_status'),
                ),
            ],
        ),
    ]
