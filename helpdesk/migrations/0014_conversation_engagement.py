"""Reserved for issue 14 (spreading); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0013_message_language_and_emotion")]

    operations: list[migrations.operations.base.Operation] = []
