"""Whether a model's rows can be built without `Model.__init__`.

helpdesk.compiled (the compiled read queries) and tenants.opening (a request's
workspace, token, membership and user) make instances from whole rows the way
`Model.from_db` leaves them, their state and every column in `__dict__`, but
without running `__init__`: about half the cost of a row. That is only the same
thing when `__init__` would do nothing else. `new_row` builds a new, unsaved
row from keyword values the same way (helpdesk.services.inbound for inbound
rows, helpdesk.services.replies for a reply). Imports no project module.
"""

import inspect
from typing import Any

from django.db.models import Model
from django.db.models.base import DEFERRED, ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init


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


# Per model: each concrete field's name, attname, whether a related row may be
# given for it, and its default (the value, or the function that makes one); the
# primary key's attname; whether `Model.__init__` would only store the values
# (tenants.plain_rows).
_LAYOUTS: dict[
    type[Model], tuple[list[tuple[str, str, bool, bool, Any]], str, bool]
] = {}


def _layout(
    model: type[Model],
) -> tuple[list[tuple[str, str, bool, bool, Any]], str, bool]:
    opts = model._meta
    fields = []
    for field in opts.concrete_fields:
        # Django's default is the same object on every call unless the field's
        # default is a function (uuid4, dict, now): that one is called per row.
        made = field.has_default() and callable(field.default)
        default = field.get_default if made else field.get_default()
        relation = bool(field.many_to_one)
        fields.append((field.name, field.attname, relation, made, default))
    assert opts.pk is not None  # noqa: S101 - a concrete model
    return fields, opts.pk.attname, builds_plainly(model)


_new = object.__new__


def new_row[Row: Model](model: type[Row], **values: Any) -> Row:
    """`model(**values)`, the same instance, built through Model.__init__'s
    positional path: the keyword path tries each of the model's fields in the
    keywords, a KeyError per field not given (about 40 of a conversation's 50),
    which made a new message or conversation cost 40-60 us of CPU. Fields not
    given get their default (called, as Django calls it); a related row given
    by its field's name is set through its descriptor afterwards, as Django
    sets it; `pk` means the primary key. For a model whose `__init__` would only
    store the values (tenants.plain_rows.builds_plainly) and while no
    pre_init/post_init receiver is connected, the instance is made as
    `__init__` leaves it (a new state, each value given in `__dict__`) without
    running it."""
    layout = _LAYOUTS.get(model)
    if layout is None:
        layout = _LAYOUTS[model] = _layout(model)
    fields, pk, plain = layout
    if "pk" in values:
        values[pk] = values.pop("pk")
    args: list[Any] = []
    related: list[tuple[str, Any]] = []
    used = 0
    for name, attname, relation, made, default in fields:
        if relation and name in values:
            related.append((name, values[name]))
            args.append(DEFERRED)
            used += 1
        elif attname in values:
            args.append(values[attname])
            used += 1
        else:
            args.append(default() if made else default)
    if used != len(values):
        known = {name for name, *_ in fields} | {attname for _, attname, *_ in fields}
        unexpected = ", ".join(repr(name) for name in values if name not in known)
        msg = f"{model.__name__}() got unexpected keyword arguments: {unexpected}"
        raise TypeError(msg)
    if plain and not pre_init.receivers and not post_init.receivers:
        row: Row = _new(model)
        stored = row.__dict__
        stored["_state"] = ModelState()
        for (_, attname, *_), value in zip(fields, args, strict=True):
            if value is not DEFERRED:
                stored[attname] = value
    else:
        row = model(*args)
    for name, value in related:
        setattr(row, name, value)
    return row
