# The ops notifications' models move here from routing, their rows with them: this creates them
# in the migration state only, on routing's tables as they are (routing 0004 drops them from
# routing's state; 0002 renames the tables and moves the content types).

import buyers.fields
import django.core.validators
import django.db.models.deletion
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('buyers', '0008_breaker_cool_down'),
        ('leads', '0005_history'),
        # The tables: routing created them.
        ('routing', '0003_notifications'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='NotificationSubscription',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(help_text="E.g. 'Ops on-call Slack', 'Ana: caps'.", max_length=120)),
                        ('active', models.BooleanField(default=True)),
                        ('channel', models.CharField(choices=[('email', 'E-mail'), ('slack', 'Slack (incoming webhook)')], max_length=5)),
                        ('email', models.EmailField(blank=True, help_text='E-mail: or this address (a team list).', max_length=254)),
                        ('slack_webhook_url', buyers.fields.EncryptedTextField(blank=True, help_text="Slack: the channel's incoming-webhook URL (kept encrypted; it is a secret).")),
                        ('kinds', models.JSONField(default=list, help_text='The events it is told of.')),
                        ('error_rate_percent', models.DecimalField(decimal_places=2, default=Decimal('20.00'), help_text="Source error rate: tell when invalid leads reach this share of a source's leads.", max_digits=5)),
                        ('duplicate_rate_percent', models.DecimalField(decimal_places=2, default=Decimal('30.00'), help_text='Source duplicate rate: tell when duplicates reach this share of its leads.', max_digits=5)),
                        ('rate_window_minutes', models.PositiveIntegerField(default=60, help_text='Rates are measured over the last this many minutes.', validators=[django.core.validators.MinValueValidator(5), django.core.validators.MaxValueValidator(1440)])),
                        ('rate_min_leads', models.PositiveIntegerField(default=20, help_text='A rate counts only over at least this many leads (one bad lead is no alert).', validators=[django.core.validators.MinValueValidator(1)])),
                        ('dedup_minutes', models.PositiveIntegerField(default=60, help_text='The same event about the same buyer, cap or source is told at most once per this many minutes; repeats are counted and told with the next one.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(10080)])),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('buyer', models.ForeignKey(blank=True, help_text="Only this buyer's events (its contracts' breakers and caps, its own caps).", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notification_subscriptions', to='buyers.buyer')),
                        ('contract', models.ForeignKey(blank=True, help_text="Only this contract's events (and its buyer's caps, which stop it too).", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notification_subscriptions', to='buyers.contract')),
                        ('source', models.ForeignKey(blank=True, help_text="Only this source's events (error and duplicate rates, postbacks).", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notification_subscriptions', to='leads.source')),
                        ('user', models.ForeignKey(blank=True, help_text='E-mail: this user, at the address on their account when it is sent.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notification_subscriptions', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['name', 'id'],
                        'db_table': 'routing_notificationsubscription',
                    },
                ),
                migrations.CreateModel(
                    name='NotificationDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('buyer_paused', 'Buyer auto-paused (circuit breaker opened)'), ('buyer_restored', 'Buyer restored (circuit breaker closed)'), ('cap_reached', 'Cap reached'), ('source_error_rate', 'Source error rate at or above a threshold'), ('source_duplicate_rate', 'Source duplicate rate at or above a threshold'), ('leads_stuck', 'Leads stuck in routing'), ('postback_failed', 'Postback given up'), ('test', 'Test notification')], max_length=24)),
                        ('event_key', models.CharField(help_text='Event and subject: what is de-duped.', max_length=255)),
                        ('channel', models.CharField(choices=[('email', 'E-mail'), ('slack', 'Slack (incoming webhook)')], max_length=5)),
                        ('recipient', models.CharField(help_text='Address, or the webhook (masked).', max_length=255)),
                        ('subject', models.CharField(help_text='The one-line summary.', max_length=255)),
                        ('payload', models.JSONField(default=dict, help_text='Slack: the JSON posted; e-mail: subject, recipients and body.')),
                        ('repeats', models.PositiveIntegerField(default=0, help_text='Repeats of this event since it was last told, reported here.')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=7)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('response_body', models.TextField(blank=True, help_text='The last answer, truncated to 4 KiB.')),
                        ('error', models.CharField(blank=True, max_length=500)),
                        ('latency_ms', models.PositiveIntegerField(blank=True, null=True)),
                        ('attempt_log', models.JSONField(blank=True, default=list, help_text='Every attempt: when, answer, error, latency.')),
                        ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                        ('subscription', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deliveries', to='notifications.notificationsubscription')),
                    ],
                    options={
                        'verbose_name_plural': 'notification deliveries',
                        'ordering': ['-created_at', '-id'],
                        'db_table': 'routing_notificationdelivery',
                    },
                ),
                migrations.CreateModel(
                    name='NotificationWindow',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('event_key', models.CharField(max_length=255)),
                        ('opened_at', models.DateTimeField()),
                        ('claim', models.BigIntegerField()),
                        ('suppressed', models.PositiveIntegerField(default=0, help_text='Repeats since opened_at.')),
                        ('last_seen_at', models.DateTimeField()),
                        ('last_event', models.JSONField(blank=True, default=dict, help_text='The latest repeat, told when the window closes.')),
                        ('carried_suppressed', models.PositiveIntegerField(default=0)),
                        ('carried_since', models.DateTimeField(blank=True, null=True)),
                        ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='windows', to='notifications.notificationsubscription')),
                    ],
                    options={
                        'db_table': 'routing_notificationwindow',
                    },
                ),
                migrations.AddConstraint(
                    model_name='notificationsubscription',
                    constraint=models.CheckConstraint(condition=models.Q(('error_rate_percent__gte', 0), ('error_rate_percent__lte', 100)), name='notification_error_rate_is_a_percentage'),
                ),
                migrations.AddConstraint(
                    model_name='notificationsubscription',
                    constraint=models.CheckConstraint(condition=models.Q(('duplicate_rate_percent__gte', 0), ('duplicate_rate_percent__lte', 100)), name='notification_duplicate_rate_is_a_percentage'),
                ),
                migrations.AddConstraint(
                    model_name='notificationsubscription',
                    constraint=models.CheckConstraint(condition=models.Q(('dedup_minutes__gte', 1)), name='notification_dedup_at_least_a_minute'),
                ),
                migrations.AddIndex(
                    model_name='notificationdelivery',
                    index=models.Index(fields=['status', 'created_at'], name='notification_status_created'),
                ),
                migrations.AddIndex(
                    model_name='notificationdelivery',
                    index=models.Index(fields=['subscription', '-created_at'], name='notification_sub_created'),
                ),
                migrations.AddIndex(
                    model_name='notificationwindow',
                    index=models.Index(condition=models.Q(('suppressed__gt', 0)), fields=['opened_at'], name='notification_window_repeats'),
                ),
                migrations.AddConstraint(
                    model_name='notificationwindow',
                    constraint=models.UniqueConstraint(fields=('subscription', 'event_key'), name='one_notification_window_per_key'),
                ),
            ],
            database_operations=[],
        ),
    ]
