"""Serializer pieces that several apps' APIs share: brand references.

A brand id sent by a client is looked up through the workspace's own brands
(`workspace_brands`, a tenant-scoped query), so another workspace's brand id is
refused as a field error, exactly like an id that does not exist.
"""

from typing import Any, ClassVar

from rest_framework import serializers

from tenants.models import Brand, Membership
from tenants.selectors import workspace_brands


class BrandRefOutput(serializers.ModelSerializer[Brand]):
    class Meta:
        model = Brand
        fields: ClassVar[list[str]] = ["id", "name"]


class BrandIdField(serializers.IntegerField):
    """An id of a brand of this workspace; validates to the Brand.

    Needs `membership` in the serializer context.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # The integer is validated (min_value) first; only then is it looked up.
        brand_id = super().run_validation(data)
        if brand_id is None:
            return None
        membership: Membership = self.context["membership"]
        brand = workspace_brands(membership).filter(pk=brand_id).first()
        if brand is None:
            raise serializers.ValidationError(
                "No such brand in this workspace.", code="no_brand"
            )
        return brand
