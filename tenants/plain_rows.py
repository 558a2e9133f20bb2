"""Whether a model's rows can be built without `Model.__init__`.

helpdesk.compiled (the compiled read queries) and tenants.opening (a request's
workspace, token, membership and user) make instances from whole rows the way
`Model.from_db` leaves them, their state and every column in `__dict__`, but
without running `__init__`: about half the cost of a row. That is only the same
thing when `__init__` would do nothing else. Imports no project module.
"""

import inspect

from django.db.models import Model
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute


def builds_plainly(model: type[Model]) -> bool:
    """Whether `model.from_db` with all its columns would only store their values
    and its state: Django's own `__init__` and `from_db`, and no field attribute
    with a setter but a foreign key's. `pre_init`/`post_init` receivers are the
    caller's to check, per call (they can be connected at any time)."""
    if model.__init__ is not Model.__init__:
        return False
    if model.from_db.__func__ is not Model.from_db.__func__:  # type: ignore[attr-defined]
        return False
    for field in model._meta.concrete_fields:
        attribute = inspect.getattr_static(model, field.attname, None)
        if hasattr(type(attribute), "__set__") and not isinstance(
            attribute, ForeignKeyDeferredAttribute
        ):
            return False
    return True
