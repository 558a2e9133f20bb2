from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0003_outage_switch")]

    operations = [
        migrations.AddField(
            model_name="post",
            name="reposts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="post",
            name="likes",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
