from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0007_simulation_runs"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="sla_due_soon_announced_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
