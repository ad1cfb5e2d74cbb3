"""``/api/v1/coverage`` (CONTRACT section 10) and the browser's coverage page.

``GET /api/v1/coverage`` takes the parameters of ``btlake coverage`` and answers its JSON.
``GET /api/v1/coverage/map`` is the page's data: one market aggregated on the server into
bands of symbols x days (gaps counted, holidays and weekends named), so it stays small at
20,000 symbols. ``/coverage`` is the page itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from btlake_pipelines.interfaces.http.dependencies import LakeDep, require_read
from btlake_pipelines.interfaces.http.routers.pages import render

router = APIRouter(prefix="/coverage", tags=["coverage"], dependencies=[Depends(require_read)])
page_router = APIRouter(include_in_schema=False)

TABLES = ("ticks", "l2", "events")
TableParam = Annotated[str, Query(description=f"market-data table: one of {', '.join(TABLES)}",
                                  json_schema_extra={"enum": list(TABLES)})]
StartParam = Annotated[str | None, Query(description="first date, inclusive (YYYY-MM-DD)")]
EndParam = Annotated[str | None, Query(description="last date, inclusive (YYYY-MM-DD)")]


class CoverageRow(BaseModel):
    market: str
    symbol: str | None = Field(description="null for market events without a symbol")
    date: str = Field(description="UTC trading date (YYYY-MM-DD)")
    rows: int
    first_ts: str | None = Field(description="first ts of the day (ISO-8601, UTC)")
    last_ts: str | None = Field(description="last ts of the day (ISO-8601, UTC)")


class GapRow(BaseModel):
    market: str
    symbol: str | None
    date: str = Field(description="a session of the market's calendar with no rows")


class CoverageAnswer(BaseModel):
    coverage: list[CoverageRow]
    gaps: list[GapRow]


class Band(BaseModel):
    first: str | None = Field(description="first symbol of the band (symbols sorted)")
    last: str | None = Field(description="last symbol of the band")
    symbols: int


class CoverageMapAnswer(BaseModel):
    table: str
    market: str
    calendar: str | None = Field(description="exchange calendar; null: trades every day")
    days: list[str]
    kinds: list[Literal["session", "holiday", "weekend"]]
    bands: list[Band]
    present: list[list[int]] = Field(description="[band][day]: symbols with rows")
    gaps: list[list[int]] = Field(description="[band][day]: symbols missing a session")
    symbols: int
    gap_count: int


@router.get("", response_model=CoverageAnswer,
            summary="Rows per market, symbol and day of a market-data table, and the gaps")
def get_coverage(
    lake: LakeDep,
    table: TableParam = "ticks",
    market: Annotated[list[str] | None, Query(description="repeatable")] = None,
    symbol: Annotated[list[str] | None, Query(description="repeatable")] = None,
    start: StartParam = None,
    end: EndParam = None,
) -> dict[str, Any]:
    found = lake.coverage(table, market=market or None, symbol=symbol or None, start=start,
                          end=end)
    return found.to_json()


class MarketCoverage(BaseModel):
    market: str
    symbols: int
    days: int
    rows: int
    first: str
    last: str


class CoverageMarkets(BaseModel):
    markets: list[MarketCoverage]


@router.get("/markets", response_model=CoverageMarkets,
            summary="The markets a market-data table covers, with their symbols and dates")
def get_coverage_markets(lake: LakeDep, table: TableParam = "ticks") -> dict[str, Any]:
    return {"markets": lake.coverage_markets(table)}


@router.get("/map", response_model=CoverageMapAnswer,
            summary="One market's coverage as bands of symbols x days (the coverage page)")
def get_coverage_map(
    lake: LakeDep,
    market: Annotated[str, Query(description="the market")],
    table: TableParam = "ticks",
    start: StartParam = None,
    end: EndParam = None,
    bands: Annotated[int, Query(ge=1, le=1000, description="rows of the map at most")] = 100,
) -> dict[str, Any]:
    return lake.coverage_map(market, table=table, start=start, end=end,
                             bands=bands).to_json()


@page_router.get("/coverage", response_class=HTMLResponse)
def coverage_page(request: Request) -> HTMLResponse:
    return render(request, "coverage.html", "Coverage", page="coverage")
