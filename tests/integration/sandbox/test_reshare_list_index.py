"""The ReShare simulator's listing index (``records.RequestTable``) answers exactly as the full scan does.

``GET /rs/patronrequests`` sorted on ``lastUpdated`` reads a tenant's requests through an index kept sorted on
``lastUpdated`` (one per ``isRequester``) instead of rendering, filtering and sorting all of them for every page
(what made a listing of 10,000 changes quadratic). What must hold: the same rows in the same order, ties still
in a fresh order on every call (mod-rs's sort has no tie-break), the same totals and the same refusals, after
any change of a request's ``lastUpdated``, however it is made.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from sandbox.reshare import query
from sandbox.reshare import records as r
from sandbox.reshare.records import ItemSpec, RequestTable
from sandbox.reshare.state import Store
from sandbox.reshare.timefmt import iso_seconds

BASE_MS = 1_924_000_000_000  # 2030-12-20T...: whole seconds, so a filter's second is the row's


@pytest.fixture
def store() -> Store:
    store = Store()
    store.seed_demo()
    store.set_clock(iso_seconds(BASE_MS), step_ms=0)
    fields = {"title": "T", "patron_identifier": "EAST-P-0001", "pickup_location_slug": "east-main"}
    for n in range(40):  # 40 pairs, 4 a second: runs of ties everywhere
        store.pinned_ms = BASE_MS + (n // 4) * 1000
        store.create_pair("east", "west", fields, [ItemSpec(f"WEST-ITEM-{n:04d}")])
    return store


def full_scan(table: RequestTable) -> list[dict[str, Any]]:
    return [table.listed(request_id) for request_id in table]


def answer(rows: Any, params: dict[str, list[str]], need_total: bool = True) -> Any:
    return query.run_list_query(
        rows, params, r.REQUEST_FIELDS, term_fields=r.REQUEST_TERM_FIELDS, need_total=need_total
    )


def ids(page: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in page]


def queries(table: RequestTable) -> list[dict[str, list[str]]]:
    keys = sorted({ms for ms, _ in table.ordered[True] + table.ordered[False]})
    middle = iso_seconds(keys[len(keys) // 2])
    late = iso_seconds(keys[-2])
    out: list[dict[str, list[str]]] = []
    for direction in ("asc", "desc"):
        sort = [f"lastUpdated;{direction}"]
        for filters in (
            [],
            ["isRequester==true"],
            ["isRequester==false"],
            ["isRequester==true", f"lastUpdated>={middle}"],
            ["isRequester==false", f"lastUpdated>{middle}"],
            [f"lastUpdated<{middle}"],
            [f"lastUpdated<={middle}", "isRequester==true"],
            [f"lastUpdated=={late}"],
            [f"lastUpdated>={middle}", f"lastUpdated<={late}"],
            ["isRequester==true", "isRequester==false"],
            [f"lastUpdated>={middle}||isRequester==false"],
            [f"!lastUpdated<{middle}"],
            ["state.code==RES_NEW_AWAIT_PULL_SLIP", f"lastUpdated>={middle}"],
            ["isRequester!=true"],
        ):
            for paging in ({"perPage": ["7"]}, {"perPage": ["7"], "page": ["3"]}, {"perPage": ["100"]}):
                out.append({"filters": filters, "sort": sort, **paging})
        out.append({"sort": sort, "term": ["EAST-P"], "match": ["patronIdentifier"], "perPage": ["9"]})
    return out


def test_the_index_answers_what_the_full_scan_answers(store, monkeypatch):
    # ties put in one order by both (by id): then the two answers must be identical, row for row
    monkeypatch.setattr(query._TIES, "shuffle", lambda rows: rows.sort(key=lambda row: row["id"]))
    for tenant in ("east", "west"):
        table = store.tenants[tenant].requests
        for params in queries(table):
            indexed, total, page = answer(table, params)
            scanned, scan_total, scan_page = answer(full_scan(table), params)
            assert ids(indexed) == ids(scanned), params
            assert (total, page) == (scan_total, scan_page), params
            fast, none, _ = answer(table, params, need_total=False)
            assert ids(fast) == ids(scanned) and none is None, params


def test_the_index_follows_every_change_of_last_updated(store, monkeypatch):
    monkeypatch.setattr(query._TIES, "shuffle", lambda rows: rows.sort(key=lambda row: row["id"]))
    east = store.tenants["east"].requests
    rng = random.Random(7)
    for request_id in rng.sample(list(east), 15):  # actions (refused ones too) and direct assignment
        store.pinned_ms = BASE_MS + 10_000 + rng.randrange(5) * 1000  # (a tenant's clock never goes back)
        store.perform_action("east", request_id, {"action": "requesterCancel", "actionParams": {}})
    for request_id in rng.sample(list(east), 5):
        east[request_id].last_updated_ms = BASE_MS + rng.randrange(20) * 1000  # as tests/e2e do
    assert [key for part in (True, False) for key in east.ordered[part]] == sorted(
        (req.last_updated_ms, req.id) for req in east.values() if req.is_requester
    ) + sorted((req.last_updated_ms, req.id) for req in east.values() if not req.is_requester)
    for params in queries(east):
        assert ids(answer(east, params)[0]) == ids(answer(full_scan(east), params)[0]), params


def test_ties_still_come_in_a_fresh_order_on_every_call(store):
    east = store.tenants["east"].requests
    params = {"filters": ["isRequester==true"], "sort": ["lastUpdated;asc"], "perPage": ["100"]}
    orders = {tuple(ids(answer(east, params)[0])) for _ in range(20)}
    assert len(orders) > 1  # 40 rows in runs of 4 ties: 20 identical orders would be (1/24^10)^19
    keys = [[record["_ms"]["lastUpdated"] for record in answer(east, params)[0]] for _ in range(3)]
    assert all(k == sorted(k) for k in keys)


@pytest.mark.parametrize(
    "params",
    [
        {"filters": ["lastUpdated>=yesterday"], "sort": ["lastUpdated;asc"]},
        {"filters": ["nope==1"], "sort": ["lastUpdated;asc"]},
        {"filters": ["isRequester==maybe"], "sort": ["lastUpdated;asc"]},
        {"sort": ["lastUpdated;sideways"]},
        {"sort": ["lastUpdated;asc"], "perPage": ["-1"]},
        {"sort": ["lastUpdated;asc"], "match": ["nope"], "term": ["x"]},
    ],
)
def test_the_same_refusals(store, params):
    east = store.tenants["east"].requests
    refusals = []
    for rows in (east, full_scan(east)):
        with pytest.raises((query.QueryError, query.UnparseableFilterDate)) as refused:
            answer(rows, params)
        refusals.append((type(refused.value), str(refused.value)))
    assert refusals[0] == refusals[1]
