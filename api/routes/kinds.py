"""The device kinds of the wire contract (`core.contract.KINDS`), for clients that show devices: the
status page takes its groups, titles, labels and units from here instead of listing kinds itself."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Viewer
from api.problems import ERROR_RESPONSES
from core.contract import KINDS, Metric

router = APIRouter(prefix="/kinds", tags=["kinds"], responses=ERROR_RESPONSES)


class MetricOut(BaseModel):
    name: str
    type: str = Field(description="float, int, bool, text, choice or label (a tag)")
    unit: str
    description: str
    required: bool
    nullable: bool
    minimum: float | None
    maximum: float | None
    choices: list[str]


class KindOut(BaseModel):
    kind: str
    title: str = Field(description="what people call one device of the kind")
    site_section: str = Field(description="the site file's list of such devices")
    label: str | None = Field(description="the label metric that names a device to people (an uplink's isp)")
    description: str
    metrics: list[MetricOut]


def _metric(m: Metric) -> MetricOut:
    return MetricOut(name=m.name, type=m.type.value, unit=m.unit, description=m.description, required=m.required,
                     nullable=m.nullable, minimum=m.minimum, maximum=m.maximum, choices=list(m.choices))


@router.get("", response_model=list[KindOut], summary="The device kinds and their metrics")
async def list_kinds(_: Viewer) -> list[KindOut]:
    """Every kind of the wire contract, in the order the status page lists them (docs/contract.md)."""
    return [KindOut(kind=spec.kind.value, title=spec.title, site_section=spec.site_section, label=spec.label,
                    description=spec.description, metrics=[_metric(m) for m in spec.metrics])
            for spec in KINDS.values()]
