"""The staff groups: Sales (read-only, dashboards, PII masked), Ops (runs the platform), Admin.

Issue 7 refines them; this gives each a sensible starting set. Re-running adds what is missing
and never removes a permission someone granted by hand.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# The same rule as `manage.py load_demo` (simulator/demo.py), which leaves existing groups alone.
APPS = ("leads", "buyers", "routing")
# Leads are evidence and auctions, attempts and sales the transaction log: never deleted.
OPS_FORBIDDEN = {
    "leads.delete_lead",
    "routing.delete_auction",
    "routing.delete_attempt",
    "routing.delete_sale",
}
# Sales view everything of leads, buyers and routing, personal data masked (config/admin_pii.py,
# reporting/masking.py) unless a user also has reporting.view_unmasked_pii; they change nothing.
SALES_REPORTING = {"reporting.view_dashboard", "reporting.view_salereturn"}
OPS_REPORTING = SALES_REPORTING | {"reporting.view_unmasked_pii", "reporting.view_rollupstate"}


def _ensure_permissions(apps) -> None:
    # Permissions are created after all migrations ran; this migration needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def create_groups(apps, schema_editor):
    _ensure_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    everything = list(Permission.objects.select_related("content_type"))

    def label(permission) -> str:
        return f"{permission.content_type.app_label}.{permission.codename}"

    sales = [
        p
        for p in everything
        if (p.content_type.app_label in APPS and p.codename.startswith("view_"))
        or label(p) in SALES_REPORTING
    ]
    ops = [
        p
        for p in everything
        if (
            p.content_type.app_label in APPS
            and p.codename.split("_", 1)[0] in {"add", "change", "delete", "view"}
        )
        and label(p) not in OPS_FORBIDDEN
        or label(p) in OPS_REPORTING
    ]
    Group.objects.get_or_create(name="Sales")[0].permissions.add(*sales)
    Group.objects.get_or_create(name="Ops")[0].permissions.add(*ops)
    Group.objects.get_or_create(name="Admin")[0].permissions.add(*everything)


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("leads", "0004_returns"),
        ("buyers", "0006_returns"),
        ("routing", "0002_contract_health"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
